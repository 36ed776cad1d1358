package riskcache_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

func checkPointCase() vendorCase { return vendorCases()[3] }

func TestCheckPointMapping(t *testing.T) {
	testLevels(t, checkPointCase(), []levelCase{
		{raw: "0", want: policy.LevelSecured},
		{raw: "1", want: policy.LevelLow},
		{raw: "2", want: policy.LevelMedium},
		{raw: "3", want: policy.LevelHigh},
		{name: "string 3", raw: "three", want: policy.LevelUnknown},
		{raw: "4", want: policy.LevelUnknown},
		{name: "negative", raw: "-1", want: policy.LevelUnknown},
		{name: "absent", raw: "", want: policy.LevelUnknown},
		{name: "inactive 0", raw: "0", inactive: true, want: policy.LevelUnknown},
		{name: "inactive 3", raw: "3", inactive: true, want: policy.LevelUnknown},
	}, nil)
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
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	got := syncDevices(t, checkPointCase(),
		vendorsim.Device{ID: "cp-1", MDMID: "aad-1", User: "alice@corp.example", Platform: "android", OSVersion: "13", Level: policy.LevelSecured, UpdatedAt: at},
		vendorsim.Device{ID: "cp-2", Level: policy.LevelHigh, UpdatedAt: at},
	)
	assert.Equal(t, riskcache.Report{DeviceID: "aad-1", AltIDs: []string{"cp-1"}, Level: policy.LevelSecured,
		User: "alice@corp.example", Platform: "android", OSVersion: "13", UpdatedAt: at}, got["aad-1"])
	assert.Equal(t, policy.LevelHigh, got["cp-2"].Level)
	assert.Empty(t, got["cp-2"].AltIDs, "no MDM id: the Harmony Mobile id, not also an alternative")
}
