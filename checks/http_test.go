package checks

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// recorder keeps what the test server saw of the last request.
type recorder struct {
	mu  sync.Mutex
	req *http.Request
	sni string
	n   int
}

func (r *recorder) record(req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.req = req.Clone(req.Context())
	if req.TLS != nil {
		r.sni = req.TLS.ServerName
	}
	r.n++
}

func (r *recorder) last() (*http.Request, string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.req, r.sni, r.n
}

// testServer serves mux on 127.0.0.1, over TLS with cert when cert is set.
func testServer(t *testing.T, cert *tls.Certificate, mux http.Handler) (*httptest.Server, netip.AddrPort) {
	t.Helper()
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, testutil.AddrPort(t, srv.Listener.Addr())
}

func healthMux(rec *recorder) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		io.WriteString(w, "status: ok\n")
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down\n")
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		io.WriteString(w, "elsewhere\n")
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "after hints\n")
	})
	return mux
}

func TestHTTPHealthy(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, healthMux(rec))
	res := probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/", ExpectBody: `status: ok`}}), 5*time.Second)
	wantOK(t, res)
	req, _, _ := rec.last()
	if req.Method != "GET" || req.URL.Path != "/" {
		t.Errorf("server saw %s %s", req.Method, req.URL)
	}
	if ua := req.Header.Get("User-Agent"); ua != UserAgent {
		t.Errorf("User-Agent %q", ua)
	}
	if req.Host != target.String() {
		t.Errorf("Host %q, want the target %s", req.Host, target)
	}
}

func TestHTTPStatus(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, healthMux(rec))
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/down"}}), 5*time.Second), "status 503")
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/down", ExpectStatus: []string{"200", "500-503"}}}), 5*time.Second))
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/", ExpectStatus: []string{"204"}}}), 5*time.Second), "status 200")
}

func TestHTTPBodyMismatch(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, healthMux(rec))
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{ExpectBody: `^healthy$`}}), 5*time.Second), "body mismatch")
}

func TestHTTPRedirectNotFollowed(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, healthMux(rec))
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/moved"}}), 5*time.Second), "status 301")
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/moved", ExpectStatus: []string{"300-399"}}}), 5*time.Second))
	req, _, n := rec.last()
	if n != 2 || req.URL.Path != "/moved" {
		t.Errorf("server saw %d requests, last %s: the redirect was followed", n, req.URL.Path)
	}
}

func TestHTTPInformational(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, healthMux(rec))
	// A 103 Early Hints before the final 200 is not the answer.
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/early", ExpectBody: "after hints"}}), 5*time.Second))
}

func TestHTTPHead(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, healthMux(rec))
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Method: "HEAD"}}), 5*time.Second))
	if req, _, _ := rec.last(); req.Method != "HEAD" {
		t.Errorf("server saw method %s", req.Method)
	}
}

func TestHTTPHostAndHeaders(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, healthMux(rec))
	spec := Spec{
		Type: "http", Target: target, Options: HTTPOptions{Path: "/status?full=1", Host: "www.example.com",
			Headers: []Header{{"X-Check", "director"}, {"X-Multi", "a"}, {"X-Multi", "b"}, {"User-Agent", "custom/1"}}},
	}
	wantOK(t, probeWithin(t, mustNew(t, spec), 5*time.Second))
	req, _, _ := rec.last()
	if req.Host != "www.example.com" {
		t.Errorf("Host %q", req.Host)
	}
	if req.URL.Path != "/status" || req.URL.RawQuery != "full=1" {
		t.Errorf("URL %s", req.URL)
	}
	if got := req.Header.Get("X-Check"); got != "director" {
		t.Errorf("X-Check %q", got)
	}
	if got := req.Header.Values("X-Multi"); strings.Join(got, ",") != "a,b" {
		t.Errorf("X-Multi %q, want a then b", got)
	}
	if got := req.Header.Values("User-Agent"); len(got) != 1 || got[0] != "custom/1" {
		t.Errorf("User-Agent %q", got)
	}
}

func TestHTTPRefused(t *testing.T) {
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: testutil.ClosedPort(t)}), 5*time.Second), "refused")
}

func TestHTTPHanging(t *testing.T) {
	target := testutil.HangingServer(t)
	for _, typ := range []string{"http", "https"} {
		t.Run(typ, func(t *testing.T) {
			p := mustNew(t, Spec{Type: typ, Target: target, Options: HTTPOptions{ExpectBody: "x"}})
			done := checkNoLeak(t)
			wantReason(t, probeWithin(t, p, 300*time.Millisecond), "timeout")
			done()
		})
	}
}

// A server that sends headers then trickles the body: the deadline covers
// the body too.
func TestHTTPSlowBody(t *testing.T) {
	stop := make(chan struct{})
	_, target := testServer(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer close(stop)
	p := mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{ExpectBody: "complete"}})
	wantReason(t, probeWithin(t, p, 300*time.Millisecond), "timeout")
}

func TestHTTPBodyCap(t *testing.T) {
	_, target := testServer(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		if r.URL.Path == "/tail" {
			// The match lies beyond a 1 KiB cap.
			io.WriteString(w, strings.Repeat("x", 100<<10)+"TAIL")
			return
		}
		// An endless body: only the cap ends the probe's reading.
		io.WriteString(w, "HEAD-MARK ")
		chunk := []byte(strings.Repeat("y", 32<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{ExpectBody: "HEAD-MARK"}}), 5*time.Second))
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{ExpectBody: "NEVER"}}), 5*time.Second), "body mismatch")
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/tail", ExpectBody: "TAIL", MaxBodyBytes: 1024}}), 5*time.Second), "body mismatch")
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Path: "/tail", ExpectBody: "TAIL", MaxBodyBytes: 200 << 10}}), 5*time.Second))
}

func TestHTTPSource(t *testing.T) {
	var mu sync.Mutex
	var remote string
	_, target := testServer(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remote = r.RemoteAddr
		mu.Unlock()
	}))
	src := netip.MustParseAddr("127.0.0.2")
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Source: src}), 5*time.Second))
	mu.Lock()
	defer mu.Unlock()
	host, _, _ := net.SplitHostPort(remote)
	if host != "127.0.0.2" {
		t.Errorf("server saw the probe from %s, want 127.0.0.2", remote)
	}
}

func TestHTTPS(t *testing.T) {
	pki := testutil.TestCA(t)
	caFile := pki.File(t)
	cert := pki.ValidLeaf(t)
	rec := &recorder{}
	_, target := testServer(t, &cert, healthMux(rec))

	t.Run("unknown authority", func(t *testing.T) {
		res := probeWithin(t, mustNew(t, Spec{Type: "https", Target: target}), 5*time.Second)
		wantReason(t, res, "tls: certificate signed by unknown authority")
	})
	t.Run("skip verify", func(t *testing.T) {
		wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "https", Target: target, Options: HTTPOptions{ExpectBody: "ok", TLSOptions: TLSOptions{TLSSkipVerify: true}}}), 5*time.Second))
	})
	t.Run("ca file", func(t *testing.T) {
		wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "https", Target: target, Options: HTTPOptions{ExpectBody: "ok", TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second))
	})
	t.Run("host is the server name", func(t *testing.T) {
		wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "https", Target: target, Options: HTTPOptions{Host: "test.example:443", TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second))
		req, sni, _ := rec.last()
		if sni != "test.example" || req.Host != "test.example:443" {
			t.Errorf("server saw SNI %q, Host %q", sni, req.Host)
		}
	})
	t.Run("server name wins", func(t *testing.T) {
		wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "https", Target: target, Options: HTTPOptions{Host: "www.other.example", TLSOptions: TLSOptions{CAFile: caFile, ServerName: "test.example"}}}), 5*time.Second))
		req, sni, _ := rec.last()
		if sni != "test.example" || req.Host != "www.other.example" {
			t.Errorf("server saw SNI %q, Host %q", sni, req.Host)
		}
	})
	t.Run("name mismatch", func(t *testing.T) {
		res := probeWithin(t, mustNew(t, Spec{Type: "https", Target: target, Options: HTTPOptions{Host: "www.other.example", TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second)
		wantReason(t, res, "tls: certificate is valid for test.example, not www.other.example")
	})
	t.Run("plain server", func(t *testing.T) {
		_, plain := testServer(t, nil, healthMux(&recorder{}))
		res := probeWithin(t, mustNew(t, Spec{Type: "https", Target: plain, Options: HTTPOptions{TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second)
		wantReason(t, res, "tls: server did not answer with TLS")
	})
	t.Run("expired", func(t *testing.T) {
		old := pki.Leaf(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
		_, target := testServer(t, &old, healthMux(&recorder{}))
		res := probeWithin(t, mustNew(t, Spec{Type: "https", Target: target, Options: HTTPOptions{TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second)
		wantReason(t, res, "tls: certificate expired")
	})
	t.Run("self-signed", func(t *testing.T) {
		cert := testutil.SelfSigned(t)
		_, target := testServer(t, &cert, healthMux(&recorder{}))
		res := probeWithin(t, mustNew(t, Spec{Type: "https", Target: target, Options: HTTPOptions{TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second)
		wantReason(t, res, "tls: certificate signed by unknown authority")
	})
	t.Run("ipv6", func(t *testing.T) {
		if !ipv6Loopback() {
			t.Skip("no IPv6 loopback")
		}
		l := testutil.ListenAt(t, "[::1]:0")
		srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: healthMux(&recorder{}), ErrorLog: log.New(io.Discard, "", 0)},
			TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "https", Target: testutil.AddrPort(t, l.Addr()), Options: HTTPOptions{TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second))
	})
}

// One prober may run concurrently: the scheduler shares it between
// virtual servers.
func TestHTTPConcurrent(t *testing.T) {
	pki := testutil.TestCA(t)
	caFile := pki.File(t)
	cert := pki.ValidLeaf(t)
	_, target := testServer(t, &cert, healthMux(&recorder{}))
	p := mustNew(t, Spec{Type: "https", Target: target, Options: HTTPOptions{ExpectBody: "ok", TLSOptions: TLSOptions{CAFile: caFile}}})
	var wg sync.WaitGroup
	results := make([]Result, 20)
	for i := range results {
		wg.Go(func() { results[i] = probeWithin(t, p, 10*time.Second) })
	}
	wg.Wait()
	for _, res := range results {
		wantOK(t, res)
	}
}
