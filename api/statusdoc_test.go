package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

var statusT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// sampleSnapshot is a status of two virtual servers, "web" with n real
// servers (every third down) and "db" with one, and a transition of
// each. It is the same for the same arguments.
func sampleSnapshot(version uint64, n int) *engine.Status {
	st := &engine.Status{Version: version, Time: statusT0, Ready: true, ConfigPath: "/etc/director.toml", ConfigSHA256: "ab12"}
	for i, name := range []string{"web", "db"} {
		vs := engine.VirtualServerStatus{
			Name: name, Forwarding: "nat", OnFailure: "quiesce", Check: "http", InKernel: true,
			Service: ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), 80)), Scheduler: "wrr"},
		}
		count := 1
		if name == "web" {
			count = n
		}
		for j := range count {
			state, reason := health.Up, ""
			if j%3 == 2 {
				state, reason = health.Down, "status 503 <b>"
			}
			last := engine.CheckResult{Time: statusT0, OK: state == health.Up, Reason: reason, Duration: time.Millisecond}
			rs := engine.RealServerStatus{
				Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i), byte(j >> 8), byte(j)}), 8080), Forwarding: "nat",
				State: state, Since: statusT0.Add(-time.Minute), ConfiguredWeight: 100, ProgrammedWeight: 100,
				Check: "http://x/healthz", Last: &last, History: []engine.CheckResult{last, last},
				Counters: ipvs.Counters{Connections: 5},
			}
			if j == 0 {
				rs.Override = &engine.Override{Kind: "drain", Reason: "kernel & <upgrade>", Source: "api", By: "127.0.0.1", Since: statusT0}
			}
			vs.RealServers = append(vs.RealServers, rs)
		}
		st.VirtualServers = append(st.VirtualServers, vs)
		st.Events = append(st.Events, engine.Event{Time: statusT0, VirtualServer: name, RealServer: vs.RealServers[0].Address,
			From: health.Unknown, To: health.Up, Reason: "check passed", Recent: vs.RealServers[0].History})
	}
	return st
}

// snapshotSource is a Source serving a snapshot the test may replace; it
// counts Snapshot calls and can make each take a while.
type snapshotSource struct {
	mu    sync.Mutex
	snap  *engine.Status
	delay time.Duration
	calls atomic.Int64
}

func (s *snapshotSource) Ready() bool { return true }

func (s *snapshotSource) Snapshot() *engine.Status {
	s.calls.Add(1)
	s.mu.Lock()
	snap, delay := s.snap, s.delay
	s.mu.Unlock()
	time.Sleep(delay)
	return snap
}

func (s *snapshotSource) set(snap *engine.Status) {
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
}

// countingTable is a table whose reads are counted and may be slow.
type countingTable struct {
	*ipvs.Memory
	delay time.Duration
	reads atomic.Int64
}

func (c *countingTable) Services(ctx context.Context) ([]ipvs.ServiceState, error) {
	c.reads.Add(1)
	time.Sleep(c.delay)
	return c.Memory.Services(ctx)
}

// getStatus fetches path as a client that does not take gzip, and checks
// that a client that does is sent the same document compressed.
func getStatus(t *testing.T, base, path string) (int, string) {
	t.Helper()
	fetch := func(enc string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Accept-Encoding", enc)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	// A render may come between the plain and the gzip request (the page
	// shows the time; live counters change): a pair that differs is fetched
	// again, and only a pair that differs every time is an error.
	var plain *http.Response
	var body []byte
	for attempt := 1; ; attempt++ {
		plain, body = fetch("identity")
		if plain.StatusCode != 200 {
			return plain.StatusCode, string(body)
		}
		if plain.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: Content-Encoding %q without Accept-Encoding: gzip", path, plain.Header.Get("Content-Encoding"))
		}
		zipped, zbody := fetch("gzip, deflate")
		if zipped.Header.Get("Content-Encoding") != "gzip" || zipped.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("%s with Accept-Encoding: gzip: Content-Encoding %q, Vary %q", path, zipped.Header.Get("Content-Encoding"), zipped.Header.Get("Vary"))
			break
		}
		zr, err := gzip.NewReader(bytes.NewReader(zbody))
		if err != nil {
			t.Errorf("%s: gzip body: %v", path, err)
			break
		}
		unzipped, err := io.ReadAll(zr)
		if err == nil && bytes.Equal(unzipped, body) {
			break
		}
		if attempt == 5 {
			t.Errorf("%s: gzip body (%v) differs from the plain one in %d tries", path, err, attempt)
			break
		}
	}
	return plain.StatusCode, string(body)
}

// TestRenderJSONIsMarshalIndent: the streamed JSON is byte for byte what
// json.MarshalIndent writes.
func TestRenderJSONIsMarshalIndent(t *testing.T) {
	s := &statusServer{}
	for _, n := range []int{0, 1, 7} {
		snap := &engine.Status{Time: statusT0}
		if n > 0 {
			snap = sampleSnapshot(1, n)
		}
		st := statusV1(*snap, "v1")
		want, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := s.renderJSON(&got, st); err != nil {
			t.Fatal(err)
		}
		if got.String() != string(want)+"\n" {
			t.Errorf("%d servers: renderJSON differs from MarshalIndent:\n%s\nwant\n%s", n, got.String(), want)
		}
	}
}

// TestStatusRenderedOncePerVersion: 100 clients asking at once cost one
// snapshot read and one render; the same snapshot version is not
// rendered again; a new version is.
func TestStatusRenderedOncePerVersion(t *testing.T) {
	src := &snapshotSource{snap: sampleSnapshot(1, 3), delay: 50 * time.Millisecond}
	srv := httptest.NewServer(Handler(src, Options{Version: "v9"}))
	defer srv.Close()

	var wg sync.WaitGroup
	bodies := make([]string, 100)
	for i := range bodies {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/api/v1/status")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Errorf("status %d: %s", resp.StatusCode, b)
			}
			bodies[i] = string(b)
		})
	}
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Errorf("100 concurrent readers read %d snapshots, want 1", n)
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("concurrent readers got different documents")
		}
	}
	first := bodies[0]
	if !strings.Contains(first, `"reason": "status 503 \u003cb\u003e"`) {
		t.Errorf("status lacks the escaped reason:\n%s", first)
	}

	// Same version, other content (an engine never does this): once the
	// render is no longer fresh the snapshot is read again, and the render
	// of version 1 is served, not a new one.
	src.mu.Lock()
	src.delay = 0
	src.mu.Unlock()
	src.set(sampleSnapshot(1, 5))
	for deadline := time.Now().Add(10 * time.Second); src.calls.Load() == 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the snapshot was never read again")
		}
		if _, body := getStatus(t, srv.URL, "/api/v1/status"); body != first {
			t.Fatalf("version 1 was rendered again")
		}
	}
	src.set(sampleSnapshot(2, 5))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body := getStatus(t, srv.URL, "/api/v1/status")
		if body != first {
			if strings.Count(body, `"address": "10.0.`) != 5 {
				t.Errorf("version 2 rendered wrong:\n%s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("version 2 was never rendered")
		}
	}
}

// TestStatusSelection: ?virtual_server narrows to one virtual server and
// its events; ?offset and ?limit page through each pool's real servers,
// its counts staying those of the whole pool; bad values are refused.
func TestStatusSelection(t *testing.T) {
	src := &snapshotSource{snap: sampleSnapshot(1, 10)}
	srv := httptest.NewServer(Handler(src, Options{Version: "v9"}))
	defer srv.Close()

	decode := func(path string) StatusV1 {
		t.Helper()
		code, body := getStatus(t, srv.URL, path)
		if code != 200 {
			t.Fatalf("%s = %d %s", path, code, body)
		}
		var st StatusV1
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return st
	}
	addrs := func(vs VirtualServerV1) string {
		var out []string
		for _, rs := range vs.RealServers {
			out = append(out, rs.Address)
		}
		return strings.Join(out, " ")
	}

	st := decode("/api/v1/status?virtual_server=web")
	if len(st.VirtualServers) != 1 || st.VirtualServers[0].Name != "web" || len(st.VirtualServers[0].RealServers) != 10 {
		t.Errorf("?virtual_server=web: %d virtual servers", len(st.VirtualServers))
	}
	if len(st.Events) != 1 || st.Events[0].VirtualServer != "web" {
		t.Errorf("?virtual_server=web: events %+v", st.Events)
	}
	st = decode("/api/v1/status?virtual_server=web&offset=3&limit=4")
	web := st.VirtualServers[0]
	if got := addrs(web); got != "10.0.0.3:8080 10.0.0.4:8080 10.0.0.5:8080 10.0.0.6:8080" {
		t.Errorf("offset=3&limit=4: %s", got)
	}
	if web.RealServersUp != 7 {
		t.Errorf("a page's real_servers_up = %d, want the whole pool's 7", web.RealServersUp)
	}
	st = decode("/api/v1/status?limit=2")
	if len(st.VirtualServers) != 2 || addrs(st.VirtualServers[0]) != "10.0.0.0:8080 10.0.0.1:8080" || addrs(st.VirtualServers[1]) != "10.1.0.0:8080" {
		t.Errorf("limit=2 over every pool: %+v", st.VirtualServers)
	}
	if st = decode("/api/v1/status?offset=9"); addrs(st.VirtualServers[0]) != "10.0.0.9:8080" || len(st.VirtualServers[1].RealServers) != 0 {
		t.Errorf("offset=9: %s / %s", addrs(st.VirtualServers[0]), addrs(st.VirtualServers[1]))
	}
	if st = decode("/api/v1/status?offset=50"); st.VirtualServers[0].RealServers == nil {
		t.Errorf("past the end real_servers must be [], not null")
	}

	for path, want := range map[string]int{
		"/api/v1/status?virtual_server=nope": 404,
		"/?virtual_server=nope":              404,
		"/api/v1/status?limit=0":             400,
		"/api/v1/status?limit=x":             400,
		"/api/v1/status?offset=-1":           400,
	} {
		if code, body := getStatus(t, srv.URL, path); code != want {
			t.Errorf("%s = %d %s, want %d", path, code, body, want)
		} else if want == 404 && !strings.Contains(body, `no virtual server "nope"`) {
			t.Errorf("%s: %s", path, body)
		}
	}
	if code, body := getStatus(t, srv.URL, "/?virtual_server=db"); code != 200 || !strings.Contains(body, `id="vs-db"`) || strings.Contains(body, `id="vs-web"`) {
		t.Errorf("/?virtual_server=db = %d, want db's card only:\n%s", code, body)
	}
	if code, body := getStatus(t, srv.URL, "/"); code != 200 || !strings.Contains(body, `id="vs-db"`) || !strings.Contains(body, `id="vs-web"`) {
		t.Errorf("/ = %d, want both cards", code)
	}
}

// TestStatusLeavesSnapshotAlone: live counters, selections and paging
// never change the shared snapshot.
func TestStatusLeavesSnapshotAlone(t *testing.T) {
	snap := sampleSnapshot(1, 6)
	table := ipvs.NewMemoryFrom(kernelOf(snap, 4242))
	srv := httptest.NewServer(Handler(&snapshotSource{snap: snap}, Options{Version: "v9", Table: table}))
	defer srv.Close()
	for _, path := range []string{"/api/v1/status", "/", "/api/v1/status?virtual_server=web&offset=1&limit=2", "/?virtual_server=db", "/api/v1/status?limit=1"} {
		code, body := getStatus(t, srv.URL, path)
		if code != 200 {
			t.Fatalf("%s = %d %s", path, code, body)
		}
		if strings.HasPrefix(path, "/api") && !strings.Contains(body, `"connections": 4242`) {
			t.Errorf("%s lacks the live counters", path)
		}
	}
	if !reflect.DeepEqual(snap, sampleSnapshot(1, 6)) {
		t.Errorf("serving the status changed the shared snapshot")
	}
}

// kernelOf is a kernel table holding st's services and real servers, each
// with conns connections.
func kernelOf(st *engine.Status, conns uint64) []ipvs.ServiceState {
	var out []ipvs.ServiceState
	for _, vs := range st.VirtualServers {
		s := ipvs.ServiceState{Service: vs.Service, Counters: ipvs.Counters{Connections: conns}}
		for _, rs := range vs.RealServers {
			s.Destinations = append(s.Destinations, ipvs.DestinationState{
				Destination: ipvs.Destination{Address: rs.Address, Weight: 100},
				Counters:    ipvs.Counters{Connections: conns},
			})
		}
		out = append(out, s)
	}
	return out
}

// TestLiveCountersReadOncePerRender: 50 clients at once cost one read of
// the kernel table; a change of the counters shows in the next render.
func TestLiveCountersReadOncePerRender(t *testing.T) {
	snap := sampleSnapshot(1, 2)
	table := &countingTable{Memory: ipvs.NewMemoryFrom(kernelOf(snap, 1)), delay: 200 * time.Millisecond}
	srv := httptest.NewServer(Handler(&snapshotSource{snap: snap}, Options{Version: "v9", Table: table}))
	defer srv.Close()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if code, body := getStatus(t, srv.URL, "/api/v1/status"); code != 200 || !strings.Contains(body, `"connections": 1,`) {
				t.Errorf("status = %d, want live counters:\n%s", code, body)
			}
		})
	}
	wg.Wait()
	if n := table.reads.Load(); n != 1 {
		t.Errorf("50 concurrent readers read the kernel table %d times, want 1", n)
	}
	key := snap.VirtualServers[0].Service.Key
	table.SetCounters(key, snap.VirtualServers[0].RealServers[1].Address, ipvs.Counters{Connections: 777})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, body := getStatus(t, srv.URL, "/api/v1/status"); strings.Contains(body, `"connections": 777`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new counters never showed in the status")
		}
	}
}

// TestStatusBusy: with every render slot taken, a request that needs a
// render waits about statusRenderWait, then is answered 503 with
// Retry-After; the whole status, rendered before, is still served.
func TestStatusBusy(t *testing.T) {
	src := &snapshotSource{snap: sampleSnapshot(1, 2)}
	srv := httptest.NewServer(Handler(src, Options{Version: "v9"}))
	defer srv.Close()
	if code, _ := getStatus(t, srv.URL, "/api/v1/status"); code != 200 {
		t.Fatal(code)
	}
	src.mu.Lock()
	src.delay = 3 * time.Second // every render now holds its slot 3s
	src.mu.Unlock()
	var wg sync.WaitGroup
	for i := range statusRenders {
		wg.Go(func() { http.Get(fmt.Sprintf("%s/api/v1/status?limit=%d", srv.URL, i+1)) })
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	resp, err := http.Get(srv.URL + "/api/v1/status?virtual_server=web")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || took < statusRenderWait/2 || took > 2*time.Second {
		t.Errorf("with every slot taken: %d Retry-After %q after %s, want 503 with Retry-After after ~%s",
			resp.StatusCode, resp.Header.Get("Retry-After"), took, statusRenderWait)
	}
	start = time.Now()
	resp, err = http.Get(srv.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != 200 || took > statusRenderWait+2*time.Second {
		t.Errorf("the whole status with every slot taken = %d after %s, want the last render", resp.StatusCode, took)
	}
	wg.Wait()
}

func TestParseSelection(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  selection
		err   string
	}{
		{"", selection{}, ""},
		{"virtual_server=web", selection{virtualServer: "web"}, ""},
		{"limit=10&offset=20&other=1", selection{offset: 20, limit: 10}, ""},
		{"offset=0", selection{}, ""},
		{"limit=0", selection{}, `limit="0": want a whole number, at least 1`},
		{"offset=-3", selection{}, `offset="-3": want a whole number, at least 0`},
		{"limit=1e3", selection{}, `limit="1e3"`},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := parseSelection(q)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %+v, %v; want %+v", tc.query, got, err, tc.want)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"deflate, gzip;q=0.5"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.0"}, false},
		{[]string{"identity"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"br", "x-gzip"}, true},
		{[]string{"gzip;q=0, *"}, false},
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// TestStatusFollowsWriteAPI: the write API turned off (its token file
// emptied) shows in the next status, though the last render is fresh.
func TestStatusFollowsWriteAPI(t *testing.T) {
	var token atomic.Value
	token.Store("secret")
	src := &snapshotSource{snap: sampleSnapshot(1, 2), delay: 200 * time.Millisecond} // fresh for 2 s
	srv := httptest.NewServer(Handler(src, Options{Version: "v9", Admin: &recordingAdmin{}, Token: func() string { return token.Load().(string) }}))
	defer srv.Close()
	if _, body := getStatus(t, srv.URL, "/api/v1/status"); !strings.Contains(body, `"write_api": true`) {
		t.Fatalf("with a token: %s", body)
	}
	token.Store("")
	if _, body := getStatus(t, srv.URL, "/api/v1/status"); !strings.Contains(body, `"write_api": false`) {
		t.Errorf("the token is gone, the status still says the write API is on")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestPacedWriterRests: a render that has run for renderSlice rests as
// long before it goes on.
func TestPacedWriterRests(t *testing.T) {
	busy := writerFunc(func(b []byte) (int, error) {
		time.Sleep(time.Millisecond) // stands for a millisecond of rendering
		return len(b), nil
	})
	p := &pacedWriter{w: busy}
	start := time.Now()
	for range 40 {
		p.Write([]byte("ab"))
	}
	if took := time.Since(start); took < 70*time.Millisecond {
		t.Errorf("40 ms of rendering took %s; it must have rested about as long again", took)
	}
	if p.n != 80 {
		t.Errorf("counted %d bytes, want 80", p.n)
	}
}
