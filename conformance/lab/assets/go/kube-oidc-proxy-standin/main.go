// kube-oidc-proxy-standin: a STAND-IN for kube-oidc-proxy, written for this
// project's conformance lab. It is NOT kube-oidc-proxy and contains no code
// from it.
//
// What it stands in for
//
//	kube-oidc-proxy as OpenUnison deploys it: the TremoloSecurity fork,
//	release 1.0.11 (github.com/TremoloSecurity/kube-oidc-proxy, itself a fork
//	of github.com/jetstack/kube-oidc-proxy).
//
// Why a stand-in
//
//	The real module cannot be fetched here. The Go module proxy refuses it:
//
//	  go mod download github.com/TremoloSecurity/kube-oidc-proxy@v1.0.11
//	  -> 403 Forbidden ... This module version is not available.
//
//	and the same for v1.0.0..v1.0.10 and jetstack/kube-oidc-proxy
//	v0.1.1..v0.3.0; GOPROXY=direct fails because only the module proxy is
//	reachable. So this program re-implements the proxy's request path from the
//	same upstream Kubernetes libraries kube-oidc-proxy is assembled from, so
//	that what a client and the API server see on the wire is the same.
//
// Field behaviours it reproduces, and with what
//
//   - OIDC authentication with k8s.io/apiserver's own JWT authenticator
//     (plugin/pkg/authenticator/token/oidc, configured through an
//     apiserver.JWTAuthenticator: issuer URL, audience = --oidc-client-id,
//     username/groups claims with their prefixes, CA from --oidc-ca-file)
//     wrapped in k8s.io/apiserver/pkg/authentication/request/bearertoken,
//     which also strips the client's Authorization header on success. A
//     missing or bad token gets 401 with body "Unauthorized" (http.Error).
//   - Forwarding with net/http/httputil.ReverseProxy
//     (NewSingleHostReverseProxy to the kubeconfig's server). Upgrades (SPDY/3.1
//     and WebSocket, i.e. exec/attach/port-forward) pass through natively on
//     101. The upstream transport is the kubeconfig's TLS/client-certificate
//     transport (rest.TLSConfigFor + transport.HTTPWrappersForConfig) and speaks
//     HTTP/1.1 only, because the API server only upgrades over HTTP/1.1.
//   - Impersonation with client-go's transport.NewImpersonatingRoundTripper:
//     the user name, the groups (always with system:authenticated) and the
//     extras. So the identity the API server authenticates is the proxy's own
//     client-certificate user, and the audit impersonatedUser is the OIDC user.
//   - Client-supplied impersonation (kubectl --as / --as-group) like the
//     TremoloSecurity fork: Impersonate-* headers without Impersonate-User are
//     refused (500 "no Impersonation-User header found for request"); every
//     requested user/group/uid/extra value is checked with an
//     authorization.k8s.io/v1 SubjectAccessReview for the authenticated user
//     (verb impersonate); any denial is 403 "<user> is not allowed to
//     impersonate ..."; when allowed the client's headers are removed and the
//     target identity is impersonated, with extras
//     originaluser.jetstack.io-{user,groups,uid,extra} naming the real caller.
//   - Serving with k8s.io/apiserver's SecureServingOptions/SecureServingInfo,
//     as the real proxy does (same flags, TLS settings, h2 + http/1.1 ALPN).
//   - --extra-user-header-client-ip adds the extra Remote-Client-IP.
//   - A readiness port (/ready) that turns ready once the OIDC authenticator
//     has fetched discovery and keys.
//
// What it does NOT do
//
//   - no token passthrough (--token-passthrough / TokenReview): a token that
//     fails OIDC is always 401;
//   - no audit webhook or audit policy (--audit-* flags);
//   - no --authentication-config (extra issuers), --oidc-required-claim,
//     --readiness-require-all-issuers, LDAP group refresh or other fork
//     options beyond the flags listed in docs/kube-oidc-proxy-standin.md;
//   - no genericclioptions client flags other than --kubeconfig (without it,
//     the in-cluster config is used, as upstream).
//
// See docs/kube-oidc-proxy-standin.md in the repository for the flag list.
package main

import (
	"context"
	goflag "flag"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/server"
	apiserveroptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

const (
	programName = "kube-oidc-proxy-standin"
	standsInFor = "TremoloSecurity kube-oidc-proxy 1.0.11"
	// appName is the name the real proxy uses for its serving cert pair.
	appName = "kube-oidc-proxy"
)

type options struct {
	// OIDC
	issuerURL      string
	clientID       string
	caFile         string
	usernameClaim  string
	usernamePrefix string
	groupsClaim    string
	groupsPrefix   string
	signingAlgs    []string

	// Client (the proxy's own identity towards the API server)
	kubeconfig string

	// Kube-OIDC-Proxy
	disableImpersonation    bool
	readinessProbePort      int
	flushInterval           time.Duration
	extraUserHeaderClientIP bool
	extraUserHeaders        []string

	// Secure serving, from k8s.io/apiserver like the real proxy.
	serving *apiserveroptions.SecureServingOptions

	version bool
}

func newOptions() *options {
	return &options{
		serving: &apiserveroptions.SecureServingOptions{
			// The real proxy binds 0.0.0.0; the lab default is loopback.
			BindAddress: net.ParseIP("127.0.0.1"),
			BindPort:    6443,
			Required:    true,
			ServerCert: apiserveroptions.GeneratableKeyCert{
				PairName: appName,
			},
		},
	}
}

func (o *options) addFlags(fs *pflag.FlagSet) {
	// OIDC (names and defaults as kube-oidc-proxy's)
	fs.StringVar(&o.issuerURL, "oidc-issuer-url", "",
		"The URL of the OpenID issuer, only HTTPS scheme will be accepted.")
	fs.StringVar(&o.clientID, "oidc-client-id", "",
		"The client ID for the OpenID Connect client (the expected audience).")
	fs.StringVar(&o.caFile, "oidc-ca-file", "",
		"CA bundle used to verify the OpenID server's certificate; the host's roots if empty.")
	fs.StringVar(&o.usernameClaim, "oidc-username-claim", "sub",
		"The OpenID claim to use as the username.")
	fs.StringVar(&o.usernamePrefix, "oidc-username-prefix", "",
		"Prefix added to every username (used as given; empty means none).")
	fs.StringVar(&o.groupsClaim, "oidc-groups-claim", "",
		"The OpenID claim holding the user's groups (string or array of strings).")
	fs.StringVar(&o.groupsPrefix, "oidc-groups-prefix", "",
		"Prefix added to every group.")
	fs.StringSliceVar(&o.signingAlgs, "oidc-signing-algs", []string{"RS256"},
		"Comma-separated list of allowed JOSE asymmetric signing algorithms.")

	// Client
	fs.StringVar(&o.kubeconfig, "kubeconfig", "",
		"kubeconfig holding the proxy's own identity (client certificate) and the API server URL; in-cluster config if empty.")

	// Kube-OIDC-Proxy
	fs.BoolVar(&o.disableImpersonation, "disable-impersonation", false,
		"Forward authenticated requests as they are, with the client's own token and no impersonation.")
	fs.IntVarP(&o.readinessProbePort, "readiness-probe-port", "P", 8080,
		"Port of the readiness probe (GET /ready), served on --bind-address.")
	fs.DurationVar(&o.flushInterval, "flush-interval", 50*time.Millisecond,
		"Interval at which response bodies are flushed to the client (0: no periodic flush, negative: after each write).")
	fs.BoolVar(&o.extraUserHeaderClientIP, "extra-user-header-client-ip", false,
		"Add the impersonated extra 'Remote-Client-IP: <REMOTE_ADDR>' to proxied requests.")
	fs.StringSliceVar(&o.extraUserHeaders, "extra-user-headers", nil,
		"Extra user info sent with every impersonated request, as key=value pairs (a key may repeat).")

	// Secure serving: --bind-address, --secure-port, --tls-cert-file,
	// --tls-private-key-file, --tls-min-version, --tls-cipher-suites,
	// --http2-max-streams-per-connection, --disable-http2-serving, ...
	o.serving.AddFlags(fs)

	fs.BoolVar(&o.version, "version", false, "Print version information and quit.")
}

func (o *options) validate() error {
	var errs []string
	if o.issuerURL == "" || o.clientID == "" {
		errs = append(errs, "--oidc-issuer-url and --oidc-client-id are required")
	}
	if o.serving.ServerCert.CertKey.CertFile == "" || o.serving.ServerCert.CertKey.KeyFile == "" {
		errs = append(errs, "--tls-cert-file and --tls-private-key-file are required")
	}
	for _, err := range o.serving.Validate() {
		errs = append(errs, err.Error())
	}
	if o.serving.BindPort == o.readinessProbePort {
		errs = append(errs, fmt.Sprintf("unable to securely serve on port %d (used by readiness probe)", o.readinessProbePort))
	}
	if o.disableImpersonation && (o.extraUserHeaderClientIP || len(o.extraUserHeaders) > 0) {
		errs = append(errs, "cannot add extra user headers when impersonation disabled")
	}
	if _, err := parseExtraUserHeaders(o.extraUserHeaders); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid flags: %s", strings.Join(errs, "; "))
	}
	return nil
}

func parseExtraUserHeaders(pairs []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, pair := range pairs {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--extra-user-headers: %q is not key=value", pair)
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// apiserverVersion is the k8s.io/apiserver version this binary was linked with.
func apiserverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == "k8s.io/apiserver" {
				if dep.Replace != nil && dep.Replace.Version != "" {
					return dep.Replace.Version
				}
				return dep.Version
			}
		}
	}
	return "unknown"
}

func versionString() string {
	return fmt.Sprintf("%s (stand-in for %s) built with k8s.io/apiserver %s",
		programName, standsInFor, apiserverVersion())
}

// caFile feeds --oidc-ca-file to the OIDC authenticator.
type caFile string

func (c caFile) CurrentCABundleContent() []byte {
	data, err := os.ReadFile(string(c))
	if err != nil {
		klog.Errorf("reading --oidc-ca-file %q: %v", string(c), err)
	}
	return data
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return rest.InClusterConfig()
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	opts := newOptions()
	fs := pflag.NewFlagSet(programName, pflag.ContinueOnError)
	opts.addFlags(fs)
	klogFlags := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags) // --v, --vmodule, --logtostderr, ...
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return nil
		}
		return err
	}
	if opts.version {
		fmt.Println(versionString())
		return nil
	}
	if err := opts.validate(); err != nil {
		return err
	}
	extraUserHeaders, _ := parseExtraUserHeaders(opts.extraUserHeaders)

	klog.Infof("%s starting: this is a stand-in written for the conformance lab, not the real kube-oidc-proxy", versionString())

	stopCh := server.SetupSignalHandler()
	lifecycle, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stopCh; cancel() }()

	cfg, err := restConfig(opts.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading the proxy's client config: %w", err)
	}

	// OIDC authenticator, configured as the fork configures it.
	usernamePrefix, groupsPrefix := opts.usernamePrefix, opts.groupsPrefix
	oidcOpts := oidc.Options{
		JWTAuthenticator: apiserver.JWTAuthenticator{
			Issuer: apiserver.Issuer{
				URL:       opts.issuerURL,
				Audiences: []string{opts.clientID},
			},
			ClaimMappings: apiserver.ClaimMappings{
				Username: apiserver.PrefixedClaimOrExpression{Claim: opts.usernameClaim, Prefix: &usernamePrefix},
				Groups:   apiserver.PrefixedClaimOrExpression{Claim: opts.groupsClaim, Prefix: &groupsPrefix},
			},
		},
		SupportedSigningAlgs: opts.signingAlgs,
	}
	if opts.caFile != "" {
		oidcOpts.CAContentProvider = caFile(opts.caFile)
	}
	oidcAuth, err := oidc.New(lifecycle, oidcOpts)
	if err != nil {
		return fmt.Errorf("creating the OIDC authenticator for %q: %w", opts.issuerURL, err)
	}

	kubeClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating the SubjectAccessReview client: %w", err)
	}

	p, err := newProxy(proxyConfig{
		restConfig:              cfg,
		auth:                    bearertoken.New(oidcAuth),
		sar:                     kubeClient.AuthorizationV1().SubjectAccessReviews(),
		disableImpersonation:    opts.disableImpersonation,
		extraUserHeaderClientIP: opts.extraUserHeaderClientIP,
		extraUserHeaders:        extraUserHeaders,
		flushInterval:           opts.flushInterval,
	})
	if err != nil {
		return err
	}

	var servingInfo *server.SecureServingInfo
	if err := opts.serving.ApplyTo(&servingInfo); err != nil {
		return err
	}
	stoppedCh, listenerStoppedCh, err := servingInfo.Serve(p, 60*time.Second, stopCh)
	if err != nil {
		return err
	}

	ready := &readiness{health: oidcAuth.HealthCheck}
	readyAddr := net.JoinHostPort(opts.serving.BindAddress.String(), strconv.Itoa(opts.readinessProbePort))
	if err := ready.serve(readyAddr, stopCh); err != nil {
		return err
	}
	go ready.watch(stopCh)

	<-stoppedCh
	<-listenerStoppedCh
	return nil
}
