package checks

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// A none check is up whatever the target does: listening, refusing,
// hanging or not there at all; only a check that was stopped says so.
func TestNone(t *testing.T) {
	for name, target := range map[string]netip.AddrPort{
		"listening": testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) { io.WriteString(c, "garbage\r\n") }),
		"refused":   testutil.ClosedPort(t),
		"hanging":   testutil.HangingServer(t),
		"no port":   netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0),
	} {
		t.Run(name, func(t *testing.T) {
			p := mustNew(t, Spec{Type: "none", Target: target, Timeout: 100 * time.Millisecond})
			res := probeWithin(t, p, 100*time.Millisecond)
			wantOK(t, res)
			if res.Duration > 50*time.Millisecond {
				t.Errorf("a none check took %v", res.Duration)
			}
		})
	}
	p := mustNew(t, Spec{Type: "none", Target: testutil.ClosedPort(t)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wantReason(t, p.Probe(ctx), "canceled")
	// Started after its deadline: the director's delay, not a verdict.
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if res := p.Probe(ctx); res.OK || !res.Inconclusive {
		t.Errorf("a none check started after its deadline: %+v, want inconclusive", res)
	}
}
