package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/ipvs"
)

// How status responses are produced. The engine publishes immutable
// snapshots; a response is rendered from the latest one and served to
// every client that asks while it is fresh (refresh.go: for ten times
// what it took to render, so that renders keep at most a tenth of a core
// busy however many clients ask), and kept gzip-compressed: at 10,000
// real servers the indented JSON is ~25 MB, compressed 1–2 MB, and a
// client that accepts gzip (browsers, Go, curl --compressed) is sent
// those bytes as they are.
const (
	// statusMaxAge bounds how long a rendered status is served: a
	// 10,000-server status costs some hundreds of milliseconds to render.
	statusMaxAge = 5 * time.Second
	// countersMaxAge: the same for the kernel's counters, read with each
	// render (the kernel collector of /metrics reads them every 5 s too).
	countersMaxAge = 5 * time.Second
	// statusRenders is how many renders run at once; statusRenderWait how
	// long a request waits for one before it is answered 503.
	statusRenders    = 2
	statusRenderWait = time.Second
	// statusWait bounds how long a request waits for a render another
	// request started.
	statusWait = 10 * time.Second
	// kernelReadTimeout bounds a live read of the kernel table.
	kernelReadTimeout = 2 * time.Second
)

// statusServer serves /api/v1/status and the page.
type statusServer struct {
	src     Source
	opts    Options
	page    *template.Template
	slots   *renderSlots
	counter *refresher[*counterSample] // nil without a table
	json    statusFormat
	html    statusFormat
}

// statusFormat is one way the status is shown: JSON or the page.
type statusFormat struct {
	what    string // for messages
	render  renderFunc
	whole   *refresher[*doc] // the whole status, rendered
	headers [][2]string
}

func newStatusServer(src Source, opts Options, page *template.Template) *statusServer {
	s := &statusServer{src: src, opts: opts, page: page, slots: newRenderSlots(statusRenders, statusRenderWait)}
	if opts.Table != nil {
		s.counter = &refresher[*counterSample]{maxAge: countersMaxAge, wait: statusWait, load: s.readCounters}
	}
	s.json = statusFormat{what: "/api/v1/status", render: s.renderJSON, headers: [][2]string{{"Content-Type", "application/json"}}}
	s.html = statusFormat{what: "the status page", render: s.renderPage, headers: [][2]string{
		{"Content-Type", "text/html; charset=utf-8"},
		// The page needs nothing but its own inline styles: no scripts,
		// no external assets, no framing.
		{"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
		{"X-Content-Type-Options", "nosniff"},
	}}
	for _, f := range []*statusFormat{&s.json, &s.html} {
		f.whole = &refresher[*doc]{maxAge: statusMaxAge, wait: statusWait, load: func(ctx context.Context, prev *stamped[*doc]) (*doc, error) {
			return s.renderWhole(ctx, prev, f.render)
		}}
	}
	return s
}

// invalidate: the status changed through this API (a write request); the
// next status request must show it.
func (s *statusServer) invalidate() {
	s.json.whole.invalidate()
	s.html.whole.invalidate()
}

// doc is a rendered response body, gzip-compressed.
type doc struct {
	key  docKey
	gz   []byte
	size int64 // uncompressed
}

// docKey is what a rendered status depends on: an unchanged key needs no
// new render.
type docKey struct {
	version  uint64 // the engine snapshot's
	counters uint64 // counterSample.gen
	writeAPI bool
	vrrp     string // the VRRP part as JSON; "" without [vrrp]
	peers    string // the BGP peers as JSON; "" without a speaker
}

// extras is what a status shows besides the engine's snapshot and the
// kernel's counters.
type extras struct {
	writeAPI bool
	vrrp     *VRRPV1 // nil without [vrrp]
	peers    string  // the BGP sessions as JSON; "" without a speaker (they change outside the engine)
}

func (s *statusServer) extras() extras {
	x := extras{writeAPI: s.opts.Admin != nil && s.opts.Token != nil && s.opts.Token() != ""}
	if s.opts.VRRP != nil {
		x.vrrp = vrrpV1(s.opts.VRRP())
	}
	if s.opts.Peers != nil {
		if b, err := json.Marshal(s.opts.Peers()); err == nil {
			x.peers = string(b)
		}
	}
	return x
}

// key is the docKey of a render with x.
func (x extras) key(version, counters uint64) (docKey, error) {
	k := docKey{version: version, counters: counters, writeAPI: x.writeAPI, peers: x.peers}
	if x.vrrp != nil {
		b, err := json.Marshal(x.vrrp)
		if err != nil {
			return docKey{}, err
		}
		k.vrrp = string(b)
	}
	return k, nil
}

// selection narrows a status response: one virtual server, and a window
// of each virtual server's real servers.
type selection struct {
	virtualServer string // "" for all
	offset        int
	limit         int // 0: no limit
}

func (sel selection) whole() bool { return sel == selection{} }

// parseSelection reads ?virtual_server=NAME&offset=M&limit=N. Other
// parameters are ignored.
func parseSelection(q url.Values) (selection, error) {
	sel := selection{virtualServer: q.Get("virtual_server")}
	for _, p := range []struct {
		name string
		min  int
		into *int
	}{{"offset", 0, &sel.offset}, {"limit", 1, &sel.limit}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < p.min {
			return selection{}, fmt.Errorf("%s=%q: want a whole number, at least %d", p.name, v, p.min)
		}
		*p.into = n
	}
	return sel, nil
}

// serveJSON answers GET /api/v1/status.
func (s *statusServer) serveJSON(w http.ResponseWriter, r *http.Request) {
	sel, err := parseSelection(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.serve(w, r, &s.json, sel)
}

// servePage answers GET /, which takes ?virtual_server=NAME.
func (s *statusServer) servePage(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, &s.html, selection{virtualServer: r.URL.Query().Get("virtual_server")})
}

func (s *statusServer) serve(w http.ResponseWriter, r *http.Request, f *statusFormat, sel selection) {
	var d *doc
	var err error
	if sel.whole() {
		// What the engine's snapshot does not hold (the write API being
		// on, the VRRP pair) is compared on each request: a change shows
		// at once.
		now, kerr := s.extras().key(0, 0)
		if kerr != nil {
			s.fail(w, r, kerr, f.what)
			return
		}
		d, err = f.whole.get(r.Context(), func(d *doc) bool {
			return d.key.writeAPI == now.writeAPI && d.key.vrrp == now.vrrp && d.key.peers == now.peers
		})
	} else {
		d, err = s.renderSelected(r.Context(), sel, f.render)
	}
	if err != nil {
		s.fail(w, r, err, f.what)
		return
	}
	for _, h := range f.headers {
		w.Header().Set(h[0], h[1])
	}
	s.serveDoc(w, r, d)
}

// errNoVirtualServer: ?virtual_server= names none in the running config.
type errNoVirtualServer string

func (e errNoVirtualServer) Error() string {
	return fmt.Sprintf("no virtual server %q in the running config", string(e))
}

func (s *statusServer) fail(w http.ResponseWriter, r *http.Request, err error, what string) {
	var none errNoVirtualServer
	switch {
	case errors.As(err, &none):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case r.Context().Err() != nil:
		// The client went away; nobody reads an answer.
	default:
		s.opts.Logger.Error("api: rendering "+what+" failed", "err", err)
		http.Error(w, "rendering "+what+" failed; see the director's log", http.StatusInternalServerError)
	}
}

// serveDoc sends a rendered body, compressed when the client takes gzip.
func (s *statusServer) serveDoc(w http.ResponseWriter, r *http.Request, d *doc) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept-Encoding")
	if acceptsGzip(r.Header.Values("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(d.gz)))
		w.Write(d.gz)
		return
	}
	// Inflated on the way out: CPU for each such request (~0.1 s at
	// 10,000 servers), but no copy of the whole document in memory.
	h.Set("Content-Length", strconv.FormatInt(d.size, 10))
	zr, err := gzip.NewReader(bytes.NewReader(d.gz))
	if err == nil {
		_, err = io.Copy(w, zr)
	}
	if err != nil && r.Context().Err() == nil {
		s.opts.Logger.Debug("api: sending a status response failed", "err", err)
	}
}

// acceptsGzip: an Accept-Encoding header allows gzip (RFC 9110 §12.5.3).
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "x-gzip" && name != "*" {
				continue
			}
			ok := true
			for p := range strings.SplitSeq(params, ";") {
				if k, v, _ := strings.Cut(strings.TrimSpace(p), "="); strings.EqualFold(k, "q") {
					q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
					ok = err == nil && q > 0
				}
			}
			if name == "*" {
				star = ok
				continue
			}
			return ok
		}
	}
	return star
}

// renderFunc writes a status in one format.
type renderFunc func(io.Writer, StatusV1) error

// renderWhole is the load of the whole-status refreshers: a new render
// unless the snapshot, the counters and the write API are as for prev.
func (s *statusServer) renderWhole(ctx context.Context, prev *stamped[*doc], render renderFunc) (*doc, error) {
	if err := s.slots.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.slots.release()
	snap := s.src.Snapshot()
	live, err := s.liveCounters(ctx)
	if err != nil {
		return nil, err
	}
	x := s.extras()
	key, err := x.key(snap.Version, live.gen)
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.val.key == key {
		return prev.val, nil
	}
	return renderDoc(key, s.status(snap, live, selection{}, x), render)
}

// renderSelected renders part of the status for one request.
func (s *statusServer) renderSelected(ctx context.Context, sel selection, render renderFunc) (*doc, error) {
	if err := s.slots.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.slots.release()
	snap := s.src.Snapshot()
	if sel.virtualServer != "" && !hasVirtualServer(snap, sel.virtualServer) {
		return nil, errNoVirtualServer(sel.virtualServer)
	}
	live, err := s.liveCounters(ctx)
	if err != nil {
		return nil, err
	}
	return renderDoc(docKey{}, s.status(snap, live, sel, s.extras()), render)
}

func hasVirtualServer(st *engine.Status, name string) bool {
	for i := range st.VirtualServers {
		if st.VirtualServers[i].Name == name {
			return true
		}
	}
	return false
}

// renderDoc runs render into a gzip-compressed doc.
func renderDoc(key docKey, st StatusV1, render renderFunc) (*doc, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level: no error
	out := &pacedWriter{w: zw}
	if err := render(out, st); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	// A copy of its exact size: the buffer grew by doubling.
	return &doc{key: key, gz: bytes.Clone(buf.Bytes()), size: out.n}, nil
}

// renderSlice is how long a render runs before it rests as long again.
// Rendering 10,000 real servers takes about a second of CPU; holding a
// core that long makes checks start late on a busy machine, while a
// render that takes turns with them costs only a staler status.
const renderSlice = 5 * time.Millisecond

// pacedWriter counts the bytes a render writes and paces the render.
type pacedWriter struct {
	w     io.Writer
	n     int64
	slice time.Time // when the render last started running
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	now := time.Now()
	if p.slice.IsZero() {
		p.slice = now
	} else if ran := now.Sub(p.slice); ran >= renderSlice {
		time.Sleep(ran)
		p.slice = time.Now()
	}
	n, err := p.w.Write(b)
	p.n += int64(n)
	return n, err
}

// renderJSON writes st as indented JSON, byte for byte what
// json.MarshalIndent(st, "", "  ") and a newline would be, one virtual
// server at a time: indenting a whole 10,000-server status at once takes
// several times its size in memory.
func (s *statusServer) renderJSON(w io.Writer, st StatusV1) error {
	servers := st.VirtualServers
	st.VirtualServers = []VirtualServerV1{}
	head, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	const empty = "\n  \"virtual_servers\": []"
	at := bytes.Index(head, []byte(empty))
	if at < 0 {
		return fmt.Errorf("renderJSON: no %q in the status", empty)
	}
	at += len(empty) - 1 // at the "]"
	if _, err := w.Write(head[:at]); err != nil {
		return err
	}
	var one, indented bytes.Buffer
	enc := json.NewEncoder(&one)
	for i := range servers {
		one.Reset()
		indented.Reset()
		if err := enc.Encode(&servers[i]); err != nil {
			return err
		}
		if i > 0 {
			indented.WriteByte(',')
		}
		indented.WriteString("\n    ")
		if err := json.Indent(&indented, bytes.TrimSuffix(one.Bytes(), []byte("\n")), "    ", "  "); err != nil {
			return err
		}
		if _, err := w.Write(indented.Bytes()); err != nil {
			return err
		}
	}
	if len(servers) > 0 {
		if _, err := io.WriteString(w, "\n  "); err != nil {
			return err
		}
	}
	if _, err := w.Write(head[at:]); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// renderPage writes st as the status page.
func (s *statusServer) renderPage(w io.Writer, st StatusV1) error {
	return s.page.Execute(w, newPageData(st, s.opts.Refresh))
}

// status is the response for sel: the snapshot, narrowed, with the live
// counters. The snapshot is shared: what differs is copied, never changed
// in place.
func (s *statusServer) status(snap *engine.Status, live *counterSample, sel selection, x extras) StatusV1 {
	st := *snap
	if sel.virtualServer != "" {
		st.VirtualServers = nil
		for _, vs := range snap.VirtualServers {
			if vs.Name == sel.virtualServer {
				st.VirtualServers = append(st.VirtualServers, vs)
			}
		}
		st.Events = nil
		for _, ev := range snap.Events {
			if ev.VirtualServer == sel.virtualServer {
				st.Events = append(st.Events, ev)
			}
		}
	}
	out := statusV1(st, s.opts.Version)
	out.Director.WriteAPI = x.writeAPI
	out.VRRP = x.vrrp
	out.Announce = announceV1(st, s.opts.Peers)
	live.overlay(&out, &st)
	if sel.offset > 0 || sel.limit > 0 {
		for i := range out.VirtualServers {
			rs := out.VirtualServers[i].RealServers
			lo := min(sel.offset, len(rs))
			hi := len(rs)
			if sel.limit > 0 {
				hi = min(hi, lo+sel.limit)
			}
			out.VirtualServers[i].RealServers = rs[lo:hi]
		}
	}
	return out
}

// counterSample is one read of the kernel's counters.
type counterSample struct {
	gen      uint64 // changes when the counters or the error change
	services map[ipvs.ServiceKey]ipvs.Counters
	dests    map[destKey]ipvs.Counters
	err      error // the read failed: the snapshot's counters stand
}

type destKey struct {
	svc  ipvs.ServiceKey
	addr netip.AddrPort
}

// noCounters: no table to read; the snapshot's counters stand.
var noCounters = &counterSample{}

func (s *statusServer) liveCounters(ctx context.Context) (*counterSample, error) {
	if s.counter == nil {
		return noCounters, nil
	}
	return s.counter.get(ctx, nil)
}

// readCounters is the counters refresher's load. A sample equal to prev
// is prev itself, so that renders keyed by its generation are reused.
func (s *statusServer) readCounters(ctx context.Context, prev *stamped[*counterSample]) (*counterSample, error) {
	ctx, cancel := context.WithTimeout(ctx, kernelReadTimeout)
	live, err := s.opts.Table.Services(ctx)
	cancel()
	var last *counterSample
	next := &counterSample{gen: 1}
	if prev != nil {
		last = prev.val
		next.gen = last.gen + 1
	}
	if err != nil {
		next.err = err
		if last != nil && last.err != nil && last.err.Error() == err.Error() {
			return last, nil
		}
		return next, nil
	}
	next.services = make(map[ipvs.ServiceKey]ipvs.Counters, len(live))
	next.dests = map[destKey]ipvs.Counters{}
	for _, svc := range live {
		k := svc.Key.Normalize()
		next.services[k] = svc.Counters
		for _, d := range svc.Destinations {
			next.dests[destKey{k, d.Address}] = d.Counters
		}
	}
	if last != nil && last.err == nil && maps.Equal(last.services, next.services) && maps.Equal(last.dests, next.dests) {
		return last, nil
	}
	return next, nil
}

// overlay puts the sample's counters into out, which statusV1 made from
// st (same virtual and real servers, same order). A failed read leaves
// the snapshot's counters and says so.
func (c *counterSample) overlay(out *StatusV1, st *engine.Status) {
	if c.err != nil {
		out.Director.KernelError = "reading the IPVS table for live counters failed (counters are from the last reconcile): " + c.err.Error()
		return
	}
	if c.services == nil || len(out.VirtualServers) != len(st.VirtualServers) {
		return
	}
	for i := range st.VirtualServers {
		vs, v := &st.VirtualServers[i], &out.VirtualServers[i]
		k := vs.Service.Key.Normalize()
		v.Counters = countersV1(c.services[k])
		if len(v.RealServers) != len(vs.RealServers) {
			continue
		}
		for j := range vs.RealServers {
			v.RealServers[j].Counters = countersV1(c.dests[destKey{k, vs.RealServers[j].Address}])
		}
	}
}
