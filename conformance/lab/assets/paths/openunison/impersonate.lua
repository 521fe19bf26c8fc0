-- The openunison stand-in's identity step (see envoy.yaml.tmpl beside this file). Runs after jwt_authn
-- has verified the bearer token and put its payload in the request's dynamic metadata.
--
-- Client Impersonate-* headers are dropped: the proxy's own credentials must never carry a client's
-- impersonation request (FIELD.md, "Impersonating proxies"). The verified `sub` becomes Impersonate-User
-- and each `groups` entry its own Impersonate-Group header: the API server reads one group per header
-- value, so a single comma-joined header would be one group named "devs,ops".

function envoy_on_request(handle)
  local headers = handle:headers()
  local client_impersonation = {}
  for name, _ in pairs(headers) do
    if string.sub(string.lower(name), 1, 12) == "impersonate-" then
      table.insert(client_impersonation, name)
    end
  end
  for _, name in ipairs(client_impersonation) do
    headers:remove(name)
  end

  local verified = handle:streamInfo():dynamicMetadata():get("envoy.filters.http.jwt_authn")
  local payload = verified and verified["jwt_payload"]
  if payload == nil or type(payload["sub"]) ~= "string" then
    -- jwt_authn requires a token on every route, so this is unreachable unless the config changes.
    handle:respond({[":status"] = "401"}, "Unauthorized")
    return
  end
  headers:replace("impersonate-user", payload["sub"])
  local groups = payload["groups"]
  if type(groups) == "table" then
    for _, group in ipairs(groups) do
      if type(group) == "string" then
        headers:add("impersonate-group", group)
      end
    end
  end
end
