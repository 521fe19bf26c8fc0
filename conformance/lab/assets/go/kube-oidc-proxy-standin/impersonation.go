// Client-supplied impersonation (kubectl --as, --as-group, --as-uid,
// Impersonate-Extra-*), authorized the way the TremoloSecurity fork of
// kube-oidc-proxy does it: one SubjectAccessReview per requested value, sent
// by the proxy for the authenticated user. Written for this stand-in from the
// fork's observable behaviour; see main.go.
package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
)

// errNoImpersonationUser: Impersonate-* headers without Impersonate-User
// (the fork answers 500 with this text).
var errNoImpersonationUser = errors.New("no Impersonation-User header found for request")

const impersonateExtraPrefix = "impersonate-extra-"

func isImpersonationHeader(key string) bool {
	return strings.HasPrefix(strings.ToLower(key), "impersonate-")
}

func hasImpersonationHeaders(h http.Header) bool {
	for k := range h {
		if isImpersonationHeader(k) {
			return true
		}
	}
	return false
}

// authorizeImpersonation checks every Impersonate-* header of req with
// SubjectAccessReviews for requester. It returns the target identity and
// removes the client's Impersonate-* headers from req once all are allowed;
// it returns nil, nil when there are none. Any denial is an error whose text
// contains "not allowed to impersonate" (answered 403 by the caller).
//
// Like the fork:
//   - users and groups are reviewed as resource users/groups in the core group,
//     uids as resource "uids" in the core group too, and extras as resource
//     userextras, subresource <lower-cased key>, group authentication.k8s.io;
//   - extra keys are taken from the header name, lower-cased, not unescaped;
//   - a header starting with Impersonate- that is none of these is an error
//     (500).
//
// Headers are visited in sorted order so that, when several would be refused,
// the answer is always the same one (the fork visits them in map order).
func authorizeImpersonation(req *http.Request, sar authorizationv1client.SubjectAccessReviewInterface, requester user.Info) (user.Info, error) {
	var keys []string
	for k := range req.Header {
		if isImpersonationHeader(k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	if req.Header.Get("Impersonate-User") == "" {
		return nil, errNoImpersonationUser
	}
	slices.Sort(keys)

	target := &user.DefaultInfo{Groups: []string{}, Extra: map[string][]string{}}
	review := func(group, resource, subresource, name string) (bool, error) {
		extra := map[string]authorizationv1.ExtraValue{}
		for k, v := range requester.GetExtra() {
			extra[k] = v
		}
		result, err := sar.Create(req.Context(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   requester.GetName(),
				Groups: requester.GetGroups(),
				Extra:  extra,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb:        "impersonate",
					Group:       group,
					Resource:    resource,
					Subresource: subresource,
					Name:        name,
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return result.Status.Allowed, nil
	}

	for _, key := range keys {
		values := req.Header[key]
		lower := strings.ToLower(key)
		switch {
		case lower == "impersonate-user":
			name := values[0]
			if name == "" {
				continue
			}
			allowed, err := review("", "users", "", name)
			if err != nil {
				return nil, err
			}
			if !allowed {
				return nil, fmt.Errorf("%s is not allowed to impersonate user '%s'", requester.GetName(), name)
			}
			target.Name = name
		case lower == "impersonate-group":
			for _, group := range values {
				allowed, err := review("", "groups", "", group)
				if err != nil {
					return nil, err
				}
				if !allowed {
					return nil, fmt.Errorf("%s is not allowed to impersonate group '%s'", requester.GetName(), group)
				}
				target.Groups = append(target.Groups, group)
			}
		case lower == "impersonate-uid":
			uid := values[0]
			allowed, err := review("", "uids", "", uid)
			if err != nil {
				return nil, err
			}
			if !allowed {
				return nil, fmt.Errorf("%s is not allowed to impersonate uid '%s'", requester.GetName(), uid)
			}
			target.UID = uid
		case strings.HasPrefix(lower, impersonateExtraPrefix):
			extraKey := lower[len(impersonateExtraPrefix):]
			for _, value := range values {
				allowed, err := review("authentication.k8s.io", "userextras", extraKey, value)
				if err != nil {
					return nil, err
				}
				if !allowed {
					return nil, fmt.Errorf("%s is not allowed to impersonate extra info '%s'='%s'", requester.GetName(), extraKey, value)
				}
				target.Extra[extraKey] = append(target.Extra[extraKey], value)
			}
		default:
			return nil, fmt.Errorf("unknown impersonation header '%s'", key)
		}
	}

	for _, key := range keys {
		delete(req.Header, key)
	}
	return target, nil
}
