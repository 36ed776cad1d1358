package riskcache_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

func graphCase() vendorCase { return vendorCases()[0] }

// reportsByID syncs everything and indexes the reports.
func reportsByID(t *testing.T, src riskcache.Source) map[string]riskcache.Report {
	t.Helper()
	reports, _, _ := fullSync(t, src, "")
	m := make(map[string]riskcache.Report, len(reports))
	for _, r := range reports {
		m[r.DeviceID] = r
	}
	return m
}

func TestGraphMapping(t *testing.T) {
	cases := []struct {
		state string
		want  policy.Level
	}{
		{"secured", policy.LevelSecured},
		{"lowSeverity", policy.LevelLow},
		{"mediumSeverity", policy.LevelMedium},
		{"highSeverity", policy.LevelHigh},
		{"compromised", policy.LevelHigh},
		{"unknown", policy.LevelUnknown},
		{"activated", policy.LevelUnknown},
		{"deactivated", policy.LevelUnknown},
		{"unresponsive", policy.LevelUnknown},
		{"misconfigured", policy.LevelUnknown},
		{"unknownFutureValue", policy.LevelUnknown},
		{"Secured", policy.LevelUnknown},
	}
	store, _, srv := startSim(t, graphCase())
	for _, c := range cases {
		store.Set(vendorsim.Device{ID: "intune-" + c.state, MDMID: "aad-" + c.state, Raw: c.state})
	}
	got := reportsByID(t, newSource(t, graphCase().vendor(srv.URL), srv.Client()))
	for _, c := range cases {
		t.Run(c.state, func(t *testing.T) {
			r, ok := got["aad-"+c.state]
			require.True(t, ok)
			assert.Equal(t, c.want, r.Level)
			assert.Equal(t, c.want, riskcache.GraphLevel(c.state))
		})
	}
}

func TestGraphReportFields(t *testing.T) {
	store, _, srv := startSim(t, graphCase())
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	store.Set(vendorsim.Device{ID: "i-1", MDMID: "aad-1", EASDeviceID: "EAS1", User: "alice@corp.example",
		Platform: "ios", OSVersion: "17.4", Level: policy.LevelHigh, UpdatedAt: at})
	store.Set(vendorsim.Device{ID: "i-2", User: "bob@corp.example", Platform: "android", OSVersion: "14", Level: policy.LevelSecured, UpdatedAt: at})
	store.Set(vendorsim.Device{ID: "i-3", MDMID: "aad-3", Platform: "windows", Level: policy.LevelLow, UpdatedAt: at})
	got := reportsByID(t, newSource(t, graphCase().vendor(srv.URL), srv.Client()))

	assert.Equal(t, riskcache.Report{DeviceID: "aad-1", AltIDs: []string{"EAS1"}, Level: policy.LevelHigh,
		User: "alice@corp.example", Platform: "ios", OSVersion: "17.4", UpdatedAt: at}, got["aad-1"])
	// No Entra registration: the all-zero azureADDeviceId falls back to id.
	assert.Equal(t, riskcache.Report{DeviceID: "i-2", Level: policy.LevelSecured,
		User: "bob@corp.example", Platform: "android", OSVersion: "14", UpdatedAt: at}, got["i-2"])
	assert.Equal(t, "windows", got["aad-3"].Platform)
	assert.Nil(t, got["aad-3"].AltIDs)
}

func TestGraphRequestsSelectAndTop(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == vendorsim.GraphTokenPath {
			_, _ = w.Write([]byte(`{"access_token":"t","token_type":"Bearer","expires_in":3600}`))
			return
		}
		got = r
		_, _ = w.Write([]byte(`{"@odata.context":"x","value":[]}`))
	}))
	t.Cleanup(srv.Close)
	v := graphCase().vendor(srv.URL)
	v.PageSize = 5000
	page, err := newSource(t, v, srv.Client()).Fetch(context.Background(), "")
	require.NoError(t, err)
	assert.Empty(t, page.Reports)
	assert.False(t, page.HasMore)
	require.NotNil(t, got)
	assert.Equal(t, riskcache.GraphManagedDevicesPath, got.URL.Path)
	assert.Equal(t, riskcache.GraphSelect, got.URL.Query().Get("$select"))
	assert.Equal(t, "1000", got.URL.Query().Get("$top"), "capped at Intune's maximum")
	assert.Equal(t, "Bearer t", got.Header.Get("Authorization"))
}

func TestGraphRejectsForeignNextLink(t *testing.T) {
	_, _, srv := startSim(t, graphCase())
	src := newSource(t, graphCase().vendor(srv.URL), srv.Client())
	_, err := src.Fetch(context.Background(), "https://evil.example/v1.0/deviceManagement/managedDevices?$skiptoken=1")
	require.Error(t, err)
}

func TestGraphMalformedPages(t *testing.T) {
	for name, body := range map[string]string{
		"no value":      `{"@odata.context":"x"}`,
		"value object":  `{"value":{}}`,
		"array":         `[]`,
		"truncated":     `{"value":[{"id":"a"},`,
		"bad field":     `{"value":[{"id":5}]}`,
		"trailing junk": `{"value":[]`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Path == vendorsim.GraphTokenPath {
					_, _ = w.Write([]byte(`{"access_token":"t","expires_in":3600}`))
					return
				}
				_, _ = w.Write([]byte(body))
			}))
			t.Cleanup(srv.Close)
			_, err := newSource(t, graphCase().vendor(srv.URL), srv.Client()).Fetch(context.Background(), "")
			require.Error(t, err)
		})
	}
}

func TestGraphEscapedStringsAndNulls(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == vendorsim.GraphTokenPath {
			_, _ = w.Write([]byte(`{"access_token":"t","expires_in":3600}`))
			return
		}
		_, _ = w.Write([]byte(`{"@odata.count":1,"value":[{"id":"i-1","azureADDeviceId":"a\u0061d-1","easDeviceId":null,` +
			`"userPrincipalName":"al\u0069ce@corp.example","operatingSystem":"iPadOS","osVersion":"17.4",` +
			`"partnerReportedThreatState":"\u0063ompromised","lastSyncDateTime":null,"extra":{"x":[1,2]}}]}`))
	}))
	t.Cleanup(srv.Close)
	page, err := newSource(t, graphCase().vendor(srv.URL), srv.Client()).Fetch(context.Background(), "")
	require.NoError(t, err)
	require.Len(t, page.Reports, 1)
	assert.Equal(t, riskcache.Report{DeviceID: "aad-1", Level: policy.LevelHigh, User: "alice@corp.example",
		Platform: "ipados", OSVersion: "17.4"}, page.Reports[0])
}
