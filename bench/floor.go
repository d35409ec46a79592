package bench

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// FloorStats is what the reference checker did.
type FloorStats struct {
	OK, Failed uint64
}

// RunFloor is the reference ("floor") checker the director is measured
// against: the least a Go checker can do — one goroutine and one ticker
// per target, a plain net.Dialer for tcp, net/http with keep-alives off
// for http — and nothing else (no state machine, no metrics, no table).
func RunFloor(ctx context.Context, kind string, targets []netip.AddrPort, interval, timeout time.Duration) FloorStats {
	var ok, failed atomic.Uint64
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	var dialer net.Dialer
	check := func(target netip.AddrPort) bool {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if kind == "tcp" {
			c, err := dialer.DialContext(cctx, "tcp", target.String())
			if err != nil {
				return false
			}
			c.Close()
			return true
		}
		req, err := http.NewRequestWithContext(cctx, http.MethodGet, "http://"+target.String()+"/", nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err == nil && resp.StatusCode == http.StatusOK
	}
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() {
			// Same spreading of first runs as the director, for a fair comparison.
			select {
			case <-time.After(time.Duration(rand.Int64N(int64(interval)))):
			case <-ctx.Done():
				return
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				if check(t) {
					ok.Add(1)
				} else if ctx.Err() == nil {
					failed.Add(1)
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	return FloorStats{OK: ok.Load(), Failed: failed.Load()}
}
