package vendorsim_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// syncAll runs a generic sync from cursor and returns the reports and the
// cursor for the next delta.
func syncAll(t *testing.T, src riskcache.Source, cursor string) ([]riskcache.Report, string) {
	t.Helper()
	var all []riskcache.Report
	for range 100 {
		page, err := src.Fetch(context.Background(), cursor)
		require.NoError(t, err)
		all = append(all, page.Reports...)
		cursor = page.NextCursor
		if !page.HasMore {
			return all, cursor
		}
	}
	t.Fatal("paging does not end")
	return nil, ""
}

func TestGenericDeltas(t *testing.T) {
	store := vendorsim.NewStore(nil)
	for _, id := range []string{"d-1", "d-2", "d-3", "d-4", "d-5"} {
		store.Set(vendorsim.Device{ID: id, User: id + "@corp.example", Platform: "ios", Level: policy.LevelSecured})
	}
	srv := httptest.NewServer(vendorsim.NewGeneric(store, "tok"))
	t.Cleanup(srv.Close)
	src := riskcache.NewGeneric(policy.Vendor{Name: "acme", URL: srv.URL, Token: "tok", PageSize: 2}, srv.Client())

	full, cursor := syncAll(t, src, "")
	require.Len(t, full, 5)
	require.NotEmpty(t, cursor)

	delta, cursor2 := syncAll(t, src, cursor)
	assert.Empty(t, delta, "nothing changed")
	assert.Equal(t, cursor, cursor2)

	require.True(t, store.SetLevel("d-3", policy.LevelHigh))
	require.True(t, store.Delete("d-5"))
	store.Set(vendorsim.Device{ID: "d-6", Level: policy.LevelLow})
	delta, cursor3 := syncAll(t, src, cursor2)
	require.Len(t, delta, 3)
	assert.Equal(t, riskcache.Report{DeviceID: "d-3", Level: policy.LevelHigh, User: "d-3@corp.example", Platform: "ios",
		UpdatedAt: delta[0].UpdatedAt}, delta[0])
	assert.Equal(t, "d-5", delta[1].DeviceID)
	assert.True(t, delta[1].Deleted)
	assert.Equal(t, "d-6", delta[2].DeviceID)

	delta, _ = syncAll(t, src, cursor3)
	assert.Empty(t, delta)

	// A change during a full sync comes again in the next delta.
	page, err := src.Fetch(context.Background(), "")
	require.NoError(t, err)
	require.True(t, page.HasMore)
	require.True(t, store.SetLevel("d-1", policy.LevelMedium))
	_, cursor4 := syncAll(t, src, page.NextCursor)
	delta, _ = syncAll(t, src, cursor4)
	require.Len(t, delta, 1)
	assert.Equal(t, policy.LevelMedium, delta[0].Level)
}

func TestGenericBadCursorAndAuth(t *testing.T) {
	srv := httptest.NewServer(vendorsim.NewGeneric(vendorsim.NewStore(nil), "tok"))
	t.Cleanup(srv.Close)
	for name, tc := range map[string]struct {
		query, token string
		status       int
	}{
		"bad cursor": {"?cursor=zz", "tok", http.StatusBadRequest},
		"no token":   {"", "", http.StatusUnauthorized},
		"bad token":  {"", "nope", http.StatusUnauthorized},
		"ok":         {"?cursor=", "tok", http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+tc.query, nil)
			require.NoError(t, err)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
		})
	}
}

func TestDemoFlipShowsInDelta(t *testing.T) {
	store := vendorsim.NewStore(nil)
	store.Set(vendorsim.Device{ID: "phone-alice", User: "alice@corp.example", Platform: "ios", OSVersion: "17.4", Level: policy.LevelSecured})
	store.Set(vendorsim.Device{ID: "phone-bob", User: "bob@corp.example", Platform: "android", OSVersion: "14", Level: policy.LevelLow})
	srv := httptest.NewServer(vendorsim.NewDemo(store, ""))
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	resp, err := client.Get(srv.URL + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	page := string(body)
	assert.Contains(t, page, "Simulated MTD vendor")
	assert.Contains(t, page, `name="viewport"`)
	assert.Contains(t, page, "phone-alice")
	assert.Equal(t, 8, strings.Count(page, `name="risk"`), "four buttons per device")

	src := riskcache.NewGeneric(policy.Vendor{Name: "demo", URL: srv.URL + vendorsim.DemoAPIPath}, client)
	full, cursor := syncAll(t, src, "")
	require.Len(t, full, 2)

	resp, err = client.PostForm(srv.URL+"/set", url.Values{"device": {"phone-alice"}, "risk": {"high"}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)

	delta, _ := syncAll(t, src, cursor)
	require.Len(t, delta, 1)
	assert.Equal(t, "phone-alice", delta[0].DeviceID)
	assert.Equal(t, policy.LevelHigh, delta[0].Level)

	for name, form := range map[string]url.Values{
		"unknown level":  {"device": {"phone-alice"}, "risk": {"unknown"}},
		"bad level":      {"device": {"phone-alice"}, "risk": {"purple"}},
		"unknown device": {"device": {"nope"}, "risk": {"low"}},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := client.PostForm(srv.URL+"/set", form)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.GreaterOrEqual(t, resp.StatusCode, 400)
		})
	}
}

func TestFaultsAreServedInOrder(t *testing.T) {
	g := vendorsim.NewGeneric(vendorsim.NewStore(nil), "")
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	g.Inject(vendorsim.Fault{Status: 503, RetryAfter: "3", Count: 2})
	g.Inject(vendorsim.Fault{Garbage: true})
	var got []string
	for range 4 {
		resp, err := srv.Client().Get(srv.URL)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		got = append(got, resp.Status[:3]+" "+resp.Header.Get("Retry-After")+" "+strings.TrimSpace(string(body))[:1])
	}
	assert.Equal(t, []string{"503 3 {", "503 3 {", "200  {", "200  {"}, got)
	assert.Equal(t, 4, g.Requests())
}
