package override

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
)

func TestParseMaintenanceNames(t *testing.T) {
	for _, tt := range []struct {
		name string
		addr string
		port uint16
		ok   bool
	}{
		{"10.0.0.11", "10.0.0.11", 0, true},
		{"10.0.0.11_8080", "10.0.0.11", 8080, true},
		{"10.0.0.11:8080", "10.0.0.11", 8080, true},
		{"2001:db8::11", "2001:db8::11", 0, true},
		{"2001:db8::11_443", "2001:db8::11", 443, true},
		{"[2001:db8::11]:443", "2001:db8::11", 443, true},
		{"10.0.0.11_0", "", 0, false},
		{"10.0.0.11:0", "", 0, false}, // port 0 is not "any port"
		{"10.0.0.11_99999", "", 0, false},
		{"web-1", "", 0, false},
		{"fe80::1%eth0", "", 0, false},
	} {
		a, p, ok := ParseMaintName(tt.name)
		if ok != tt.ok || (ok && (a.String() != tt.addr || p != tt.port)) {
			t.Errorf("ParseMaintName(%q) = %v %d %v, want %s %d %v", tt.name, a, p, ok, tt.addr, tt.port, tt.ok)
		}
	}
	for _, tt := range []struct{ line, kind, reason string }{
		{"", Drain, "maintenance file"},
		{"new kernel", Drain, "new kernel"},
		{"disable: disk", Disable, "disk"},
		{"DISABLE disk", Disable, "disk"},
		{"drain", Drain, "maintenance file"},
		{"disabled: typo stays a reason", Drain, "disabled: typo stays a reason"},
	} {
		if k, r := ParseMaintContent(tt.line); k != tt.kind || r != tt.reason {
			t.Errorf("ParseMaintContent(%q) = %q %q, want %q %q", tt.line, k, r, tt.kind, tt.reason)
		}
	}
}

var (
	idA = config.ServerID{VirtualServer: "web", RealServer: netip.MustParseAddrPort("10.0.0.1:80")}
	idB = config.ServerID{VirtualServer: "web", RealServer: netip.MustParseAddrPort("10.0.0.2:80")}
	idC = config.ServerID{VirtualServer: "web", RealServer: netip.MustParseAddrPort("10.0.0.3:80")}
	t0  = time.Unix(1000, 0)
)

func api(kind, reason string) Override {
	return Override{Kind: kind, Reason: reason, Source: SourceAPI, By: "192.0.2.1", Since: t0}
}

func maint(kind, reason, path string) Override {
	return Override{Kind: kind, Reason: reason, Source: SourceMaintenance, By: path, Since: t0}
}

func TestHold(t *testing.T) {
	for kind, want := range map[string]desired.Hold{Drain: desired.HoldDrain, Disable: desired.HoldDisable, "": desired.HoldNone, "explode": desired.HoldNone} {
		if got := (Override{Kind: kind}).Hold(); got != want {
			t.Errorf("Hold of %q = %v, want %v", kind, got, want)
		}
	}
}

func TestEffective(t *testing.T) {
	for _, tt := range []struct {
		name       string
		api, maint string // kinds; "" none
		want       string // "source kind", or "none"
	}{
		{"nothing", "", "", "none"},
		{"api alone", Drain, "", "api drain"},
		{"maintenance alone", "", Disable, "maintenance_dir disable"},
		{"maintenance disable beats api drain", Drain, Disable, "maintenance_dir disable"},
		{"api disable beats maintenance drain", Disable, Drain, "api disable"},
		{"equal drains: the api's", Drain, Drain, "api drain"},
		{"equal disables: the api's", Disable, Disable, "api disable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSet()
			if tt.api != "" {
				s.API[idA] = api(tt.api, "by api")
			}
			if tt.maint != "" {
				s.Maint[idA] = maint(tt.maint, "by file", "/m/10.0.0.1")
			}
			got, wantKind := "none", ""
			if o, ok := s.Effective(idA); ok {
				got, wantKind = o.Source+" "+o.Kind, o.Kind
			}
			if got != tt.want {
				t.Errorf("Effective = %q, want %q", got, tt.want)
			}
			if k := s.KindOf(idA); k != wantKind {
				t.Errorf("KindOf = %q, want %q", k, wantKind)
			}
			if _, ok := s.Effective(idB); ok {
				t.Error("another server has an override")
			}
		})
	}
}

// ended renders ended overrides: "vs/rs kind reason", sorted.
func ended(es []Ended) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s %s %s", e.ID, e.Kind, e.Reason))
	}
	slices.Sort(out)
	return out
}

func ids(m map[config.ServerID]Override) []string {
	var out []string
	for id := range m {
		out = append(out, id.String())
	}
	slices.Sort(out)
	return out
}

func TestExpire(t *testing.T) {
	s := NewSet()
	withExpiry := func(o Override, at time.Time) Override { o.Expires = at; return o }
	s.API[idA] = withExpiry(api(Drain, "past"), t0.Add(time.Minute))
	s.API[idB] = withExpiry(api(Disable, "exactly now"), t0.Add(2*time.Minute))
	s.API[idC] = withExpiry(api(Drain, "future"), t0.Add(3*time.Minute))
	other := config.ServerID{VirtualServer: "web", RealServer: netip.MustParseAddrPort("10.0.0.4:80")}
	s.API[other] = api(Drain, "forever")
	s.Maint[idA] = maint(Drain, "file", "/m/x")
	for _, tt := range []struct {
		at        time.Duration
		want      []string
		remaining string
	}{
		{30 * time.Second, nil, "[web/10.0.0.1:80 web/10.0.0.2:80 web/10.0.0.3:80 web/10.0.0.4:80]"},
		{2 * time.Minute, []string{"web/10.0.0.1:80 drain past", "web/10.0.0.2:80 disable exactly now"}, "[web/10.0.0.3:80 web/10.0.0.4:80]"},
		{2 * time.Minute, nil, "[web/10.0.0.3:80 web/10.0.0.4:80]"},
		{time.Hour, []string{"web/10.0.0.3:80 drain future"}, "[web/10.0.0.4:80]"},
	} {
		got := ended(s.Expire(t0.Add(tt.at)))
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("Expire at +%s ended %q, want %q", tt.at, got, tt.want)
		}
		if r := fmt.Sprint(ids(s.API)); r != tt.remaining {
			t.Errorf("after Expire at +%s: api %s, want %s", tt.at, r, tt.remaining)
		}
	}
	if len(s.Maint) != 1 {
		t.Errorf("Expire touched the maintenance overrides: %v", s.Maint)
	}
}

func TestFollow(t *testing.T) {
	s := NewSet()
	s.API[idA] = api(Drain, "stays")
	s.API[idB] = api(Disable, "left")
	s.Maint[idA] = maint(Drain, "stays too", "/m/a")
	s.Maint[idC] = maint(Disable, "left too", "/m/c")
	got := ended(s.Follow(map[config.ServerID]bool{idA: true}))
	if fmt.Sprint(got) != "[web/10.0.0.2:80 disable left]" {
		t.Errorf("Follow returned %v, want only the API override of the server that left", got)
	}
	if fmt.Sprint(ids(s.API)) != "[web/10.0.0.1:80]" || fmt.Sprint(ids(s.Maint)) != "[web/10.0.0.1:80]" {
		t.Errorf("after Follow: api %v maint %v, want only web/10.0.0.1:80 in each", ids(s.API), ids(s.Maint))
	}
	if got := s.Follow(map[config.ServerID]bool{idA: true}); got != nil {
		t.Errorf("second Follow returned %v", got)
	}
}

func TestApplyMaintenance(t *testing.T) {
	// Each step applies the overrides given (server letter: kind, reason,
	// file) and expects the changes, rendered "+a drain r" (set or
	// changed) or "-a drain r" (ended), sorted; "" for none.
	type ov struct{ kind, reason, by string }
	letter := map[config.ServerID]string{idA: "a", idB: "b", idC: "c"}
	byLetter := map[string]config.ServerID{"a": idA, "b": idB, "c": idC}
	s := NewSet()
	for i, st := range []struct {
		apply map[string]ov
		want  string
	}{
		{map[string]ov{"a": {Drain, "kernel", "/m/a"}}, "+a drain kernel"},
		{map[string]ov{"a": {Drain, "kernel", "/m/a"}}, ""},
		{map[string]ov{"a": {Disable, "kernel", "/m/a"}}, "+a disable kernel"},
		{map[string]ov{"a": {Disable, "disk", "/m/a"}}, "+a disable disk"},
		{map[string]ov{"a": {Disable, "disk", "/m/web/a"}}, "+a disable disk"},
		{map[string]ov{"a": {Disable, "disk", "/m/web/a"}, "b": {Drain, "b too", "/m/b"}}, "+b drain b too"},
		{map[string]ov{"b": {Drain, "b too", "/m/b"}, "c": {Drain, "c", "/m/c"}}, "-a disable disk +c drain c"},
		{map[string]ov{}, "-b drain b too -c drain c"},
		{map[string]ov{}, ""},
		{nil, ""},
	} {
		next := map[config.ServerID]Override{}
		for l, o := range st.apply {
			next[byLetter[l]] = maint(o.kind, o.reason, o.by)
		}
		var got []string
		for _, c := range s.ApplyMaintenance(next) {
			if c.Set {
				got = append(got, fmt.Sprintf("+%s %s %s", letter[c.ID], c.Now.Kind, c.Now.Reason))
			} else {
				got = append(got, fmt.Sprintf("-%s %s %s", letter[c.ID], c.Ended.Kind, c.Ended.Reason))
			}
		}
		slices.SortFunc(got, func(a, b string) int { return strings.Compare(a[1:], b[1:]) })
		if g := strings.Join(got, " "); g != st.want {
			t.Errorf("step %d: changes %q, want %q", i, g, st.want)
		}
		if len(st.apply) != len(s.Maint) {
			t.Errorf("step %d: %d maintenance overrides in force, want %d", i, len(s.Maint), len(st.apply))
		}
		for l, o := range st.apply {
			if got := s.Maint[byLetter[l]]; got.Kind != o.kind || got.Reason != o.reason || got.By != o.by {
				t.Errorf("step %d: %s in force %+v, want %+v", i, l, got, o)
			}
		}
	}
}

// A file touched again (new modification time, same content) is no change:
// the override keeps the time it started.
func TestApplyMaintenanceTouchedFile(t *testing.T) {
	s := NewSet()
	s.ApplyMaintenance(map[config.ServerID]Override{idA: maint(Drain, "r", "/m/a")})
	touched := maint(Drain, "r", "/m/a")
	touched.Since = t0.Add(time.Hour)
	if got := s.ApplyMaintenance(map[config.ServerID]Override{idA: touched}); got != nil {
		t.Errorf("touching the file changed %+v", got)
	}
	if !s.Maint[idA].Since.Equal(t0) {
		t.Errorf("since %v, want the first %v", s.Maint[idA].Since, t0)
	}
}

func TestMatchMaintenance(t *testing.T) {
	ap := netip.MustParseAddrPort
	servers := []config.ServerID{
		{VirtualServer: "web", RealServer: ap("10.0.0.1:80")},
		{VirtualServer: "web", RealServer: ap("10.0.0.1:8080")},
		{VirtualServer: "web", RealServer: ap("10.0.0.2:80")},
		{VirtualServer: "web6", RealServer: ap("[2001:db8::11]:443")},
		{VirtualServer: "mail", RealServer: ap("10.0.0.1:25")},
	}
	mtime := time.Unix(500, 0)
	file := func(vs, name, content string) MaintFile {
		path := "/m/" + name
		if vs != "" {
			path = "/m/" + vs + "/" + name
		}
		return MaintFile{VirtualServer: vs, Name: name, Path: path, Content: content, ModTime: mtime}
	}
	for _, tt := range []struct {
		name      string
		files     []MaintFile
		want      []string // "id kind reason path", sorted
		unmatched []string // paths
	}{
		{"address alone: every port, every virtual server",
			[]MaintFile{file("", "10.0.0.1", "new kernel")},
			[]string{"mail/10.0.0.1:25 drain new kernel /m/10.0.0.1", "web/10.0.0.1:80 drain new kernel /m/10.0.0.1", "web/10.0.0.1:8080 drain new kernel /m/10.0.0.1"},
			nil},
		{"address and port: that port only",
			[]MaintFile{file("", "10.0.0.1_8080", "disable: disk"), file("", "[2001:db8::11]:443", "")},
			[]string{"web/10.0.0.1:8080 disable disk /m/10.0.0.1_8080", "web6/[2001:db8::11]:443 drain maintenance file /m/[2001:db8::11]:443"},
			nil},
		{"subdirectory: only that virtual server",
			[]MaintFile{file("web", "10.0.0.1", "drain: move")},
			[]string{"web/10.0.0.1:80 drain move /m/web/10.0.0.1", "web/10.0.0.1:8080 drain move /m/web/10.0.0.1"},
			nil},
		{"disable beats drain: disable first",
			[]MaintFile{file("", "10.0.0.1_80", "disable: broken"), file("web", "10.0.0.1", "drain: later")},
			[]string{"web/10.0.0.1:80 disable broken /m/10.0.0.1_80", "web/10.0.0.1:8080 drain later /m/web/10.0.0.1"},
			nil},
		{"disable beats drain: drain first",
			[]MaintFile{file("web", "10.0.0.1", "drain: earlier"), file("", "10.0.0.1_80", "disable: broken")},
			[]string{"web/10.0.0.1:80 disable broken /m/10.0.0.1_80", "web/10.0.0.1:8080 drain earlier /m/web/10.0.0.1"},
			nil},
		{"equal holds: the first file",
			[]MaintFile{file("", "10.0.0.2", "first"), file("web", "10.0.0.2_80", "second")},
			[]string{"web/10.0.0.2:80 drain first /m/10.0.0.2"},
			nil},
		{"unmatched: no such server, wrong subdirectory, not an address, wrong port",
			[]MaintFile{file("", "10.0.0.9", ""), file("mail", "10.0.0.2", ""), file("", "README", ""), file("", "10.0.0.2_81", ""), file("", "10.0.0.2_80", "")},
			[]string{"web/10.0.0.2:80 drain maintenance file /m/10.0.0.2_80"},
			[]string{"/m/10.0.0.9", "/m/mail/10.0.0.2", "/m/README", "/m/10.0.0.2_81"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, unmatched := MatchMaintenance(tt.files, servers)
			var lines []string
			for _, id := range slices.SortedFunc(maps.Keys(got), func(a, b config.ServerID) int { return strings.Compare(a.String(), b.String()) }) {
				o := got[id]
				if o.Source != SourceMaintenance || !o.Since.Equal(mtime) || !o.Expires.IsZero() {
					t.Errorf("%s: source %q since %v expires %v, want maintenance_dir, the file's time, none", id, o.Source, o.Since, o.Expires)
				}
				lines = append(lines, fmt.Sprintf("%s %s %s %s", id, o.Kind, o.Reason, o.By))
			}
			if fmt.Sprintf("%q", lines) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("matched\n%q\nwant\n%q", lines, tt.want)
			}
			var paths []string
			for _, f := range unmatched {
				paths = append(paths, f.Path)
			}
			if fmt.Sprintf("%q", paths) != fmt.Sprintf("%q", tt.unmatched) {
				t.Errorf("unmatched %q, want %q", paths, tt.unmatched)
			}
		})
	}
}
