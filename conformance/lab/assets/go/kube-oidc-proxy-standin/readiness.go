// Readiness probe of the stand-in. The real proxy serves one on
// --readiness-probe-port (with github.com/heptiolabs/healthcheck) that turns
// ready, and stays ready, once the OIDC authenticator has initialised, i.e.
// fetched the issuer's discovery document and keys. This one does the same
// from the authenticator's own HealthCheck, and answers like that library:
// GET /ready and /live, 200 or 503, body "{}" (or the check results as JSON
// with ?full=1).
package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

const readinessCheckName = "secure serving"

type readiness struct {
	health func() error
	ready  atomic.Bool
}

// check latches: once the authenticator has been healthy, the proxy is ready.
func (r *readiness) check() error {
	if r.ready.Load() {
		return nil
	}
	if err := r.health(); err != nil {
		return errors.New("OIDC provider not yet initialized: " + err.Error())
	}
	if r.ready.CompareAndSwap(false, true) {
		klog.Info("OIDC provider initialized, proxy ready")
	}
	return nil
}

// watch polls until ready so that the "proxy ready" log line appears without
// waiting for a probe.
func (r *readiness) watch(stopCh <-chan struct{}) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for r.check() != nil {
		select {
		case <-stopCh:
			return
		case <-t.C:
		}
	}
}

func (r *readiness) handler(checks func() map[string]error) http.HandlerFunc {
	return func(rw http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		results := map[string]string{}
		status := http.StatusOK
		for name, err := range checks() {
			if err != nil {
				results[name] = err.Error()
				status = http.StatusServiceUnavailable
			} else {
				results[name] = "OK"
			}
		}
		rw.Header().Set("Content-Type", "application/json; charset=utf-8")
		rw.WriteHeader(status)
		if req.URL.Query().Get("full") != "1" {
			_, _ = rw.Write([]byte("{}\n"))
			return
		}
		enc := json.NewEncoder(rw)
		enc.SetIndent("", "    ")
		_ = enc.Encode(results)
	}
}

func (r *readiness) serve(addr string, stopCh <-chan struct{}) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", r.handler(func() map[string]error {
		return map[string]error{readinessCheckName: r.check()}
	}))
	mux.HandleFunc("/live", r.handler(func() map[string]error { return map[string]error{} }))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.Errorf("ready probe listener failed: %s", err)
		}
	}()
	go func() {
		<-stopCh
		_ = srv.Close()
	}()
	klog.Infof("Serving readiness probe on http://%s/ready", ln.Addr())
	return nil
}
