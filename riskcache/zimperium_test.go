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

func zimperiumCase() vendorCase { return vendorCases()[2] }

func TestZimperiumMapping(t *testing.T) {
	cases := []struct {
		posture string
		want    policy.Level
	}{
		{"NORMAL", policy.LevelSecured},
		{"LOW", policy.LevelLow},
		{"ELEVATED", policy.LevelMedium},
		{"CRITICAL", policy.LevelHigh},
		{"", policy.LevelUnknown},
		{"HIGH", policy.LevelUnknown},
		{"normal", policy.LevelUnknown},
	}
	store, _, srv := startSim(t, zimperiumCase())
	for i, c := range cases {
		store.Set(vendorsim.Device{ID: "z-" + string(rune('a'+i)), Raw: c.posture})
	}
	got := reportsByID(t, newSource(t, zimperiumCase().vendor(srv.URL), srv.Client()))
	for i, c := range cases {
		t.Run(c.posture, func(t *testing.T) {
			r, ok := got["z-"+string(rune('a'+i))]
			require.True(t, ok)
			assert.Equal(t, c.want, r.Level)
			assert.Equal(t, c.want, riskcache.ZimperiumLevel(c.posture))
		})
	}
}

func TestZimperiumReportFields(t *testing.T) {
	store, _, srv := startSim(t, zimperiumCase())
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	store.Set(vendorsim.Device{ID: "z-1", MDMID: "aad-1", User: "alice@corp.example", Platform: "ios", OSVersion: "17.4", Level: policy.LevelHigh, UpdatedAt: at})
	store.Set(vendorsim.Device{ID: "z-2", Platform: "android", Level: policy.LevelLow, UpdatedAt: at})
	got := reportsByID(t, newSource(t, zimperiumCase().vendor(srv.URL), srv.Client()))
	assert.Equal(t, riskcache.Report{DeviceID: "aad-1", AltIDs: []string{"z-1"}, Level: policy.LevelHigh,
		User: "alice@corp.example", Platform: "ios", OSVersion: "17.4", UpdatedAt: at}, got["aad-1"])
	assert.Equal(t, policy.LevelLow, got["z-2"].Level)
}
