package riskcache_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

func zimperiumCase() vendorCase { return vendorCases()[2] }

func TestZimperiumMapping(t *testing.T) {
	testLevels(t, zimperiumCase(), []levelCase{
		{raw: "NORMAL", want: policy.LevelSecured},
		{raw: "LOW", want: policy.LevelLow},
		{raw: "ELEVATED", want: policy.LevelMedium},
		{raw: "CRITICAL", want: policy.LevelHigh},
		{raw: "", want: policy.LevelUnknown},
		{raw: "HIGH", want: policy.LevelUnknown},
		{raw: "normal", want: policy.LevelUnknown},
	}, riskcache.ZimperiumLevel)
}

func TestZimperiumReportFields(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	got := syncDevices(t, zimperiumCase(),
		vendorsim.Device{ID: "z-1", MDMID: "aad-1", User: "alice@corp.example", Platform: "ios", OSVersion: "17.4", Level: policy.LevelHigh, UpdatedAt: at},
		vendorsim.Device{ID: "z-2", Platform: "android", Level: policy.LevelLow, UpdatedAt: at},
	)
	assert.Equal(t, riskcache.Report{DeviceID: "aad-1", AltIDs: []string{"z-1"}, Level: policy.LevelHigh,
		User: "alice@corp.example", Platform: "ios", OSVersion: "17.4", UpdatedAt: at}, got["aad-1"])
	assert.Equal(t, policy.LevelLow, got["z-2"].Level)
	assert.Empty(t, got["z-2"].AltIDs, "no MDM id: the Zimperium id, not also an alternative")
}
