package riskcache_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

func checkPointCase() vendorCase { return vendorCases()[3] }

func TestCheckPointMapping(t *testing.T) {
	cases := []struct {
		name     string
		risk     string
		inactive bool
		want     policy.Level
	}{
		{"0", "0", false, policy.LevelSecured},
		{"1", "1", false, policy.LevelLow},
		{"2", "2", false, policy.LevelMedium},
		{"3", "3", false, policy.LevelHigh},
		{"string 3", "three", false, policy.LevelUnknown},
		{"4", "4", false, policy.LevelUnknown},
		{"negative", "-1", false, policy.LevelUnknown},
		{"absent", "", false, policy.LevelUnknown},
		{"inactive 0", "0", true, policy.LevelUnknown},
		{"inactive 3", "3", true, policy.LevelUnknown},
	}
	store, _, srv := startSim(t, checkPointCase())
	for i, c := range cases {
		store.Set(vendorsim.Device{ID: "cp-" + string(rune('a'+i)), Raw: c.risk, Inactive: c.inactive})
	}
	got := reportsByID(t, newSource(t, checkPointCase().vendor(srv.URL), srv.Client()))
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := got["cp-"+string(rune('a'+i))]
			require.True(t, ok)
			assert.Equal(t, c.want, r.Level)
		})
	}
	for _, c := range []struct {
		risk, status string
		want         policy.Level
	}{
		{"2", "1", policy.LevelMedium},
		{"2", "Active", policy.LevelMedium},
		{"2", "0", policy.LevelUnknown},
		{"2", "-1", policy.LevelUnknown},
		{"2", "4", policy.LevelUnknown},
		{"2", "", policy.LevelUnknown},
	} {
		assert.Equal(t, c.want, riskcache.CheckPointLevel(c.risk, c.status), "risk %s status %q", c.risk, c.status)
	}
}

func TestCheckPointReportFields(t *testing.T) {
	store, _, srv := startSim(t, checkPointCase())
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	store.Set(vendorsim.Device{ID: "cp-1", MDMID: "aad-1", User: "alice@corp.example", Platform: "android", OSVersion: "13", Level: policy.LevelSecured, UpdatedAt: at})
	got := reportsByID(t, newSource(t, checkPointCase().vendor(srv.URL), srv.Client()))
	assert.Equal(t, riskcache.Report{DeviceID: "aad-1", AltIDs: []string{"cp-1"}, Level: policy.LevelSecured,
		User: "alice@corp.example", Platform: "android", OSVersion: "13", UpdatedAt: at}, got["aad-1"])
}
