package ipvs_test

import (
	"testing"

	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/ipvs/ipvstest"
)

// TestMemoryConformance holds the in-memory table to the contract the
// kernel's table is held to in the e2e VM (TestKernelConformance).
func TestMemoryConformance(t *testing.T) {
	ipvstest.Run(t, ipvstest.Target{New: func(*testing.T) ipvs.Table { return ipvs.NewMemory() }, Parallel: true})
}
