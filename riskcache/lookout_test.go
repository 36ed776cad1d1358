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

func lookoutCase() vendorCase { return vendorCases()[1] }

func TestLookoutMapping(t *testing.T) {
	cases := []struct {
		status string
		want   policy.Level
	}{
		{"SECURE", policy.LevelSecured},
		{"THREATS_LOW", policy.LevelLow},
		{"THREAT_LOW", policy.LevelLow},
		{"THREATS_MEDIUM", policy.LevelMedium},
		{"THREAT_MEDIUM", policy.LevelMedium},
		{"THREATS_HIGH", policy.LevelHigh},
		{"THREAT_HIGH", policy.LevelHigh},
		{"THREATS_CRITICAL", policy.LevelHigh},
		{"", policy.LevelUnknown},
		{"PENDING", policy.LevelUnknown},
		{"secure", policy.LevelUnknown},
	}
	store, _, srv := startSim(t, lookoutCase())
	for i, c := range cases {
		store.Set(vendorsim.Device{ID: "guid-" + c.status, MDMID: "mdm-" + string(rune('a'+i)), Raw: c.status})
	}
	got := reportsByID(t, newSource(t, lookoutCase().vendor(srv.URL), srv.Client()))
	for i, c := range cases {
		t.Run(c.status, func(t *testing.T) {
			r, ok := got["mdm-"+string(rune('a'+i))]
			require.True(t, ok)
			assert.Equal(t, c.want, r.Level)
			assert.Equal(t, c.want, riskcache.LookoutLevel(c.status))
		})
	}
}

func TestLookoutReportFields(t *testing.T) {
	store, _, srv := startSim(t, lookoutCase())
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	store.Set(vendorsim.Device{ID: "g-1", MDMID: "mdm-1", User: "alice@corp.example", Platform: "android", OSVersion: "14", Level: policy.LevelMedium, UpdatedAt: at})
	store.Set(vendorsim.Device{ID: "g-2", User: "bob@corp.example", Platform: "ios", Level: policy.LevelSecured, UpdatedAt: at})
	store.Set(vendorsim.Device{ID: "g-3", Level: policy.LevelSecured, Inactive: true, UpdatedAt: at})
	got := reportsByID(t, newSource(t, lookoutCase().vendor(srv.URL), srv.Client()))

	assert.Equal(t, riskcache.Report{DeviceID: "mdm-1", AltIDs: []string{"g-1"}, Level: policy.LevelMedium,
		User: "alice@corp.example", Platform: "android", OSVersion: "14", UpdatedAt: at}, got["mdm-1"])
	assert.Equal(t, "g-2", got["g-2"].DeviceID, "no MDM id: the Lookout guid")
	assert.Equal(t, "ios", got["g-2"].Platform)
	assert.Equal(t, policy.LevelUnknown, got["g-3"].Level, "a deactivated device's old verdict does not count")
}
