package riskcache_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// syncDevices stores devices in a new simulator of vc's type, syncs a
// client of it and returns the reports by device id.
func syncDevices(t *testing.T, vc vendorCase, devices ...vendorsim.Device) map[string]riskcache.Report {
	t.Helper()
	store, _, srv := startSim(t, vc)
	for _, d := range devices {
		store.Set(d)
	}
	return reportsByID(t, newSource(t, vc.vendor(srv.URL), srv.Client()))
}

// levelCase is a vendor's raw verdict and the level riskgate reads from it.
type levelCase struct {
	// name is the subtest's name; raw when empty.
	name     string
	raw      string
	inactive bool
	want     policy.Level
}

// testLevels syncs one device a case, with the case's raw verdict, from a
// simulator of vc's type and checks each device's level. level, when not
// nil, is the vendor's exported mapping, which must agree.
func testLevels(t *testing.T, vc vendorCase, cases []levelCase, level func(raw string) policy.Level) {
	t.Helper()
	id := func(i int) string { return fmt.Sprintf("level-%02d", i) }
	devices := make([]vendorsim.Device, len(cases))
	for i, c := range cases {
		devices[i] = vendorsim.Device{ID: id(i), Raw: c.raw, Inactive: c.inactive}
	}
	got := syncDevices(t, vc, devices...)
	for i, c := range cases {
		name := c.name
		if name == "" {
			name = c.raw
		}
		t.Run(name, func(t *testing.T) {
			r, ok := got[id(i)]
			require.True(t, ok)
			assert.Equal(t, c.want, r.Level)
			if level != nil {
				assert.Equal(t, c.want, level(c.raw))
			}
		})
	}
}
