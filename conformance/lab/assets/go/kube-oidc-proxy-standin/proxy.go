// Request path of the stand-in: authenticate, decide whom to impersonate,
// forward through httputil.ReverseProxy. See main.go for what this stands in
// for and why.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	"k8s.io/klog/v2"
)

const (
	// remoteClientIPExtra is the extra key --extra-user-header-client-ip adds.
	remoteClientIPExtra = "Remote-Client-IP"
	// logTimestamp is the timestamp layout of the real proxy's access lines.
	logTimestamp = "2006-01-02T15:04:05-0700"
)

var (
	errUnauthorized          = errors.New("Unauthorized")
	errNoName                = errors.New("No name in OIDC info")
	errNoImpersonationConfig = errors.New("No impersonation configuration in context")
)

type proxyConfig struct {
	restConfig              *rest.Config
	auth                    authenticator.Request
	sar                     authorizationv1client.SubjectAccessReviewInterface
	disableImpersonation    bool
	extraUserHeaderClientIP bool
	extraUserHeaders        map[string][]string
	flushInterval           time.Duration
}

type proxy struct {
	cfg proxyConfig
	// clientRT authenticates as the proxy itself (kubeconfig client cert).
	clientRT http.RoundTripper
	// noAuthRT trusts the API server's CA but presents no identity; used with
	// --disable-impersonation, where the client's own token is forwarded.
	noAuthRT http.RoundTripper
	reverse  *httputil.ReverseProxy
}

// forward is what the handler decided; RoundTrip reads it from the context.
type forward struct {
	passthrough   bool // --disable-impersonation: send as is
	impersonation transport.ImpersonationConfig
	inbound       user.Info // the OIDC user
	outbound      user.Info // the client-requested target, or nil
	remoteAddr    string
	xff           string // the client's X-Forwarded-For, for the access line
}

type forwardKey struct{}

func newProxy(cfg proxyConfig) (*proxy, error) {
	p := &proxy{cfg: cfg}

	var err error
	if p.clientRT, err = upstreamRoundTripper(cfg.restConfig); err != nil {
		return nil, fmt.Errorf("building the API server transport: %w", err)
	}
	if cfg.disableImpersonation {
		p.noAuthRT, err = upstreamRoundTripper(&rest.Config{
			Host:    cfg.restConfig.Host,
			APIPath: cfg.restConfig.APIPath,
			Timeout: cfg.restConfig.Timeout,
			TLSClientConfig: rest.TLSClientConfig{
				CAFile:     cfg.restConfig.CAFile,
				CAData:     cfg.restConfig.CAData,
				ServerName: cfg.restConfig.ServerName,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("building the API server transport: %w", err)
		}
	}

	target, err := url.Parse(cfg.restConfig.Host)
	if err != nil {
		return nil, fmt.Errorf("failed to parse url: %s", err)
	}
	if target.Scheme == "" || target.Host == "" {
		return nil, fmt.Errorf("API server URL %q needs a scheme and a host", cfg.restConfig.Host)
	}
	p.reverse = httputil.NewSingleHostReverseProxy(target)
	p.reverse.Transport = p
	p.reverse.ErrorHandler = p.fail
	p.reverse.FlushInterval = cfg.flushInterval
	return p, nil
}

// upstreamRoundTripper is the kubeconfig's TLS and credentials over a plain
// HTTP/1.1 transport: the API server only upgrades (exec, attach,
// port-forward) over HTTP/1.1. A Transport with its own TLSClientConfig and
// no ForceAttemptHTTP2 never negotiates h2; the empty TLSNextProto makes that
// explicit.
func upstreamRoundTripper(cfg *rest.Config) (http.RoundTripper, error) {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: tlsConfig,
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	transportConfig, err := cfg.TransportConfig()
	if err != nil {
		return nil, err
	}
	return transport.HTTPWrappersForConfig(transportConfig, tr)
}

func (p *proxy) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	// Kept only for --disable-impersonation, which forwards the client's token.
	clientAuthorization := slices.Clone(req.Header.Values("Authorization"))

	resp, ok, err := p.cfg.auth.AuthenticateRequest(req)
	if err != nil || !ok {
		if err != nil {
			klog.V(4).Infof("authentication failed (%s): %s", req.RemoteAddr, redact(err.Error(), clientAuthorization))
		}
		p.fail(rw, req, errUnauthorized)
		return
	}
	// bearertoken already removed it on success; never forward it.
	req.Header.Del("Authorization")

	remoteAddr := clientAddress(req)
	inbound := resp.User

	if p.cfg.disableImpersonation {
		for _, v := range clientAuthorization {
			req.Header.Add("Authorization", v)
		}
		f := &forward{passthrough: true, inbound: inbound, remoteAddr: remoteAddr, xff: req.Header.Get("X-Forwarded-For")}
		p.reverse.ServeHTTP(rw, req.WithContext(context.WithValue(req.Context(), forwardKey{}, f)))
		return
	}

	if inbound == nil || inbound.GetName() == "" {
		p.fail(rw, req, errNoName)
		return
	}

	effective := inbound
	var outbound user.Info
	if hasImpersonationHeaders(req.Header) {
		target, err := authorizeImpersonation(req, p.cfg.sar, inbound)
		if err != nil {
			p.fail(rw, req, err)
			return
		}
		if target != nil {
			outbound = target
			effective = target
		}
	}

	groups := slices.Clone(effective.GetGroups())
	if !slices.Contains(groups, user.AllAuthenticated) {
		groups = append(groups, user.AllAuthenticated)
	}

	extra := map[string][]string{}
	for k, v := range effective.GetExtra() {
		extra[k] = slices.Clone(v)
	}
	if p.cfg.extraUserHeaderClientIP {
		extra[remoteClientIPExtra] = append(extra[remoteClientIPExtra], remoteAddr)
	}
	for k, vs := range p.cfg.extraUserHeaders {
		extra[k] = append(extra[k], vs...)
	}
	if outbound != nil {
		// Who really made the request, for the API server's audit log.
		extra["originaluser.jetstack.io-user"] = []string{inbound.GetName()}
		if g := inbound.GetGroups(); len(g) > 0 {
			extra["originaluser.jetstack.io-groups"] = slices.Clone(g)
		}
		if uid := inbound.GetUID(); uid != "" {
			extra["originaluser.jetstack.io-uid"] = []string{uid}
		}
		if e := inbound.GetExtra(); len(e) > 0 {
			encoded, err := json.Marshal(e)
			if err != nil {
				p.fail(rw, req, err)
				return
			}
			extra["originaluser.jetstack.io-extra"] = []string{string(encoded)}
		}
	}

	f := &forward{
		// Like the real proxy, no UID is impersonated (not even a requested
		// Impersonate-Uid, which is only authorized).
		impersonation: transport.ImpersonationConfig{
			UserName: effective.GetName(),
			Groups:   groups,
			Extra:    extra,
		},
		inbound:    inbound,
		outbound:   outbound,
		remoteAddr: remoteAddr,
		xff:        req.Header.Get("X-Forwarded-For"),
	}
	p.reverse.ServeHTTP(rw, req.WithContext(context.WithValue(req.Context(), forwardKey{}, f)))
}

// RoundTrip is the ReverseProxy's transport: it adds the proxy's identity and
// the impersonation headers to the outgoing request.
func (p *proxy) RoundTrip(req *http.Request) (*http.Response, error) {
	f, _ := req.Context().Value(forwardKey{}).(*forward)
	if f == nil {
		return nil, errNoImpersonationConfig
	}
	if f.passthrough {
		logSuccess(req, f, "")
		return p.noAuthRT.RoundTrip(req)
	}
	// The client's own Impersonate-* headers were removed once authorized (a
	// request with any left was refused). Drop strays defensively so that the
	// ImpersonatingRoundTripper, which leaves a request that already carries
	// Impersonate-User alone, always sets the proxy's choice.
	for k := range req.Header {
		if isImpersonationHeader(k) {
			req.Header.Del(k)
		}
	}
	logSuccess(req, f, f.impersonation.UserName)
	return transport.NewImpersonatingRoundTripper(f.impersonation, p.clientRT).RoundTrip(req)
}

// fail answers a refused or failed request the way the real proxy does, and
// is also the ReverseProxy's ErrorHandler.
func (p *proxy) fail(rw http.ResponseWriter, req *http.Request, err error) {
	var status int
	var body string
	switch {
	case errors.Is(err, errUnauthorized):
		status, body = http.StatusUnauthorized, "Unauthorized"
	case errors.Is(err, errNoName):
		status, body = http.StatusForbidden, "Username claim not available in OIDC Issuer response"
	case errors.Is(err, errNoImpersonationUser):
		status, body = http.StatusInternalServerError, errNoImpersonationUser.Error()
	case strings.Contains(err.Error(), "not allowed to impersonate"):
		status, body = http.StatusForbidden, err.Error()
	default:
		klog.Errorf("unknown error (%s): %s", req.RemoteAddr, err)
		status, body = http.StatusInternalServerError, ""
	}
	logFailure(req, status, err)
	http.Error(rw, body, status)
}

// clientAddress is the client's host:port, or, when the request carries
// X-Forwarded-For, the first public address in it with the connection's port
// (what the real proxy derives with github.com/sebest/xff).
func clientAddress(req *http.Request) string {
	xff := req.Header.Get("X-Forwarded-For")
	if xff == "" {
		return req.RemoteAddr
	}
	_, port, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	for _, candidate := range strings.Split(xff, ",") {
		candidate = strings.TrimSpace(candidate)
		addr, err := netip.ParseAddr(candidate)
		if err != nil {
			continue
		}
		if addr.IsLoopback() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsPrivate() {
			continue
		}
		return net.JoinHostPort(candidate, port)
	}
	return req.RemoteAddr
}

func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}

func describeUser(u user.Info, withUID bool) string {
	if u == nil {
		return ""
	}
	var extras []string
	for k, v := range u.GetExtra() {
		extras = append(extras, k+"="+strings.Join(v, "|"))
	}
	slices.Sort(extras)
	if withUID {
		return fmt.Sprintf("[%s / %s / %s / %s]", u.GetName(), strings.Join(u.GetGroups(), "|"), u.GetUID(), strings.Join(extras, " "))
	}
	return fmt.Sprintf("[%s / %s / %s]", u.GetName(), strings.Join(u.GetGroups(), "|"), strings.Join(extras, " "))
}

// logSuccess writes one access line per forwarded request to stderr, in the
// shape of the real proxy's "AuSuccess" line plus the method and the user the
// API server is asked to impersonate. Never a token.
func logSuccess(req *http.Request, f *forward, impersonating string) {
	line := fmt.Sprintf("[%s] AuSuccess src:[%s / %s] method:%s URI:%s inbound:%s",
		time.Now().Format(logTimestamp), hostOnly(req.RemoteAddr), f.xff,
		req.Method, req.RequestURI, describeUser(f.inbound, false))
	if f.outbound != nil {
		line += " outbound:" + describeUser(f.outbound, true)
	}
	if f.passthrough {
		line += " impersonate-user:<none: impersonation disabled>"
	} else {
		line += " impersonate-user:" + impersonating
	}
	fmt.Fprintln(os.Stderr, line)
}

func logFailure(req *http.Request, status int, err error) {
	fmt.Fprintf(os.Stderr, "[%s] AuFail src:[%s / %s] method:%s URI:%s status:%d reason:%s\n",
		time.Now().Format(logTimestamp), hostOnly(req.RemoteAddr), req.Header.Get("X-Forwarded-For"),
		req.Method, req.RequestURI, status, err)
}

// redact removes any bearer token the client sent from a message.
func redact(msg string, authorization []string) string {
	for _, a := range authorization {
		fields := strings.Fields(a)
		if len(fields) >= 2 && len(fields[1]) >= 8 {
			msg = strings.ReplaceAll(msg, fields[1], "<redacted>")
		}
	}
	return msg
}
