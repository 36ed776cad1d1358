package riskcache_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

func lookoutCase() vendorCase { return vendorCases()[1] }

func TestLookoutMapping(t *testing.T) {
	testLevels(t, lookoutCase(), []levelCase{
		{raw: "SECURE", want: policy.LevelSecured},
		{raw: "THREATS_LOW", want: policy.LevelLow},
		{raw: "THREAT_LOW", want: policy.LevelLow},
		{raw: "THREATS_MEDIUM", want: policy.LevelMedium},
		{raw: "THREAT_MEDIUM", want: policy.LevelMedium},
		{raw: "THREATS_HIGH", want: policy.LevelHigh},
		{raw: "THREAT_HIGH", want: policy.LevelHigh},
		{raw: "THREATS_CRITICAL", want: policy.LevelHigh},
		{raw: "", want: policy.LevelUnknown},
		{raw: "PENDING", want: policy.LevelUnknown},
		{raw: "secure", want: policy.LevelUnknown},
	}, riskcache.LookoutLevel)
}

func TestLookoutReportFields(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	got := syncDevices(t, lookoutCase(),
		vendorsim.Device{ID: "g-1", MDMID: "mdm-1", User: "alice@corp.example", Platform: "android", OSVersion: "14", Level: policy.LevelMedium, UpdatedAt: at},
		vendorsim.Device{ID: "g-2", User: "bob@corp.example", Platform: "ios", Level: policy.LevelSecured, UpdatedAt: at},
		vendorsim.Device{ID: "g-3", Level: policy.LevelSecured, Inactive: true, UpdatedAt: at},
	)

	assert.Equal(t, riskcache.Report{DeviceID: "mdm-1", AltIDs: []string{"g-1"}, Level: policy.LevelMedium,
		User: "alice@corp.example", Platform: "android", OSVersion: "14", UpdatedAt: at}, got["mdm-1"])
	assert.Equal(t, "g-2", got["g-2"].DeviceID, "no MDM id: the Lookout guid")
	assert.Empty(t, got["g-2"].AltIDs, "the guid is the id, not also an alternative")
	assert.Equal(t, "ios", got["g-2"].Platform)
	assert.Equal(t, policy.LevelUnknown, got["g-3"].Level, "a deactivated device's old verdict does not count")
}
