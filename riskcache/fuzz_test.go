package riskcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

// The fuzz targets below cover every parser of outside input in this
// package: vendor pages (generic, Graph, Lookout, Zimperium, Check Point),
// the webhook (signature header and whole handler) and the state file.
// Each is seeded from testdata/samples; inputs the fuzzer found to fail
// are kept under testdata/fuzz as regression cases.

// sample reads testdata/samples/name.
func sample(f *testing.F, name string) []byte {
	f.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "samples", name))
	require.NoError(f, err)
	return b
}

// addPageSeeds adds a vendor sample and the classic bad answers: truncated,
// empty, HTML, the wrong shape.
func addPageSeeds(f *testing.F, good []byte, list string) {
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte("<html><body>Sign in to the guest Wi-Fi</body></html>"))
	f.Add([]byte(`{"` + list + `": {}}`))
	f.Add([]byte(`{"` + list + `": null}`))
	f.Add([]byte(`{"` + list + `": []}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"` + list + `": [1]}`))
	f.Add(append(bytes.Clone(good), " {}"...))
}

// checkPage holds for every page a decoder returns.
func checkPage(t *testing.T, p Page, err error) {
	t.Helper()
	if err != nil {
		require.Zero(t, p.Reports, "nothing is returned with an error")
		return
	}
	for _, r := range p.Reports {
		require.NotEmpty(t, r.DeviceID)
		require.LessOrEqual(t, r.Level, policy.LevelHigh)
		for _, a := range r.AltIDs {
			require.NotEmpty(t, a)
			require.NotEqual(t, r.DeviceID, a)
		}
	}
	if p.HasMore {
		require.NotEmpty(t, p.NextCursor)
	}
}

func FuzzParsePage(f *testing.F) {
	addPageSeeds(f, sample(f, "generic.json"), "devices")
	f.Add(sample(f, "webhook.json"))
	f.Add([]byte(`{"devices":[{"device_id":"a","risk":"SECURED"},{"device_id":"b","risk":" secured"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 16
		p, err := ParsePage(bytes.NewReader(b), limit)
		checkPage(t, p, err)
		if err != nil {
			_, isDecode := err.(*DecodeError)
			require.True(t, isDecode, "every error is a *DecodeError: %v", err)
			return
		}
		require.LessOrEqual(t, len(b), limit)
		require.True(t, json.Valid(b), "only a complete JSON value is a page")
	})
}

// graphRef is a managed device decoded by the reflection-based
// go-json-experiment decoder, the reference the streaming decoder is
// compared with.
type graphRef struct {
	ID    string `json:"id"`
	AAD   string `json:"azureADDeviceId"`
	EAS   string `json:"easDeviceId"`
	UPN   string `json:"userPrincipalName"`
	OS    string `json:"operatingSystem"`
	OSV   string `json:"osVersion"`
	State string `json:"partnerReportedThreatState"`
	Sync  string `json:"lastSyncDateTime"`
}

// graphReference decodes a Graph page with the reflection decoder and
// applies the documented mapping; ok is false when the page must be
// rejected.
func graphReference(b []byte) (reports []Report, next string, ok bool) {
	var page struct {
		Value *[]*graphRef `json:"value"`
		Next  string       `json:"@odata.nextLink"`
	}
	if err := jsonv2.Unmarshal(b, &page, jsontext.AllowDuplicateNames(true)); err != nil || page.Value == nil {
		return nil, "", false
	}
	for _, d := range *page.Value {
		if d == nil {
			return nil, "", false
		}
		r := Report{DeviceID: d.AAD, User: d.UPN, OSVersion: d.OSV, Platform: platform(d.OS), Level: GraphLevel(d.State)}
		if r.DeviceID == "" || r.DeviceID == graphZeroID {
			r.DeviceID = d.ID
		}
		if r.DeviceID == "" {
			return nil, "", false
		}
		if d.EAS != "" && d.EAS != r.DeviceID {
			r.AltIDs = []string{d.EAS}
		}
		if d.Sync != "" {
			at, err := time.Parse(time.RFC3339Nano, d.Sync)
			if err != nil {
				return nil, "", false
			}
			r.UpdatedAt = at
		}
		reports = append(reports, r)
	}
	return reports, page.Next, true
}

func FuzzGraphPage(f *testing.F) {
	addPageSeeds(f, sample(f, "graph.json"), "value")
	f.Add([]byte(`{"value":[{"id":"a","id":"b","partnerReportedThreatState":"secured","partnerReportedThreatState":"compromised"}]}`))
	f.Add([]byte(`{"value":[{"id":"a\u0000\ud800","easDeviceId":"a"}],"@odata.nextLink":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		reports, next, err := decodeGraphPage(bytes.NewReader(b))
		checkPage(t, Page{Reports: reports, NextCursor: next, HasMore: next != ""}, err)
		want, wantNext, ok := graphReference(b)
		if !ok {
			require.Error(t, err, "the reference decoder rejects this page")
			return
		}
		require.NoError(t, err, "the reference decoder accepts this page")
		require.Equal(t, wantNext, next)
		require.Len(t, reports, len(want))
		for i := range want {
			got := reports[i]
			if len(got.AltIDs) == 0 {
				got.AltIDs = nil
			}
			require.Equal(t, want[i], got, "device %d", i)
		}
	})
}

func FuzzLookoutPage(f *testing.F) {
	addPageSeeds(f, sample(f, "lookout.json"), "devices")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeLookoutPage(bytes.NewReader(b), 3)
		checkPage(t, p, err)
	})
}

func FuzzZimperiumPage(f *testing.F) {
	addPageSeeds(f, sample(f, "zimperium.json"), "content")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeZimperiumPage(bytes.NewReader(b), 3)
		checkPage(t, p, err)
	})
}

func FuzzCheckPointPage(f *testing.F) {
	addPageSeeds(f, sample(f, "checkpoint.json"), "objects")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeCheckPointPage(bytes.NewReader(b), 0, 3)
		checkPage(t, p, err)
		if err == nil && p.HasMore {
			n, err := strconv.Atoi(p.NextCursor)
			require.NoError(t, err)
			require.Positive(t, n)
		}
	})
}

// FuzzRiskLevels checks that only a vendor's documented word for secured
// ever maps to secured: no Unicode look-alike, padding or other case.
func FuzzRiskLevels(f *testing.F) {
	for _, s := range []string{"secured", "SECURED", " secured", "secure", "SECURE", "NORMAL", "0", "1", "3", "ſecured", "highSeverity", "THREATS_HIGH", "CRITICAL", "active"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if GenericLevel(s) == policy.LevelSecured {
			require.Len(t, s, len("secured"))
			require.Equal(t, "secured", asciiLower(s))
		}
		if GraphLevel(s) == policy.LevelSecured {
			require.Equal(t, "secured", s)
		}
		if LookoutLevel(s) == policy.LevelSecured {
			require.Equal(t, "SECURE", s)
		}
		if ZimperiumLevel(s) == policy.LevelSecured {
			require.Equal(t, "NORMAL", s)
		}
		if CheckPointLevel(s, "1") == policy.LevelSecured {
			require.Equal(t, "0", s)
		}
		require.Equal(t, policy.LevelUnknown, CheckPointLevel("0", s+"x"), "status %q", s+"x")
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func FuzzSignatureHeader(f *testing.F) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	f.Add(Sign("whsec", now, sample(f, "webhook.json")))
	f.Add("t=1764151200,v1=" + strings.Repeat("ab", 32) + ",v1=" + strings.Repeat("cd", 32))
	f.Add("t=abc,v1=00")
	f.Add("t=1,t=2,v1=" + strings.Repeat("00", 32))
	f.Add("v0=x, t=+17 ,v1=" + strings.Repeat("AB", 32))
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		ts, sigs, ok := parseSignature(h)
		if !ok {
			return
		}
		_, err := strconv.ParseInt(ts, 10, 64)
		require.NoError(t, err)
		require.NotEmpty(t, sigs)
		for _, s := range sigs {
			require.Len(t, s, sha256.Size)
		}
	})
}

// FuzzWebhook drives the whole handler with a body, a signature header and
// a timestamp skew. Invariants: it never panics; an unsigned (or wrongly
// signed, expired, replayed, malformed) push is refused and never changes
// the cache; a correctly signed, fresh, well-formed push is applied once.
func FuzzWebhook(f *testing.F) {
	hook := sample(f, "webhook.json")
	f.Add(hook, "", int64(0), true)
	f.Add(hook, "", int64(301), true)
	f.Add(hook, "", int64(-299), true)
	f.Add(hook, ",v1="+strings.Repeat("00", 32), int64(0), true)
	f.Add(hook, ",t=1", int64(0), true)
	f.Add(hook, Sign("whsec", time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), []byte(`{"devices":[]}`)), int64(0), false)
	f.Add([]byte(`{"devices":[{"device_id":"sentinel","risk":"secured"}]}`), "t=1764151200,v1="+strings.Repeat("0", 64), int64(0), false)
	f.Add([]byte(`{"devices":[{"device_id":"sentinel","deleted":true}]}`), "", int64(0), true)
	f.Add([]byte(`{}`), "", int64(0), true)
	f.Fuzz(func(t *testing.T, body []byte, header string, skew int64, sign bool) {
		clk := newClock()
		const secret = "whsec"
		c := New(Options{Now: clk.Now, Vendors: []string{"acme"}})
		c.Apply("acme", []Report{{DeviceID: "sentinel", Level: policy.LevelHigh, User: "s@corp.example"}})
		wh := NewWebhook(WebhookOptions{Cache: c, Now: clk.Now, Logger: slog.New(slog.DiscardHandler),
			Secrets: func(v string) (string, bool) { return secret, v == "acme" }})
		skew %= 1 << 20
		plain := header == "" // a signed push without extra parts
		if sign {
			header = Sign(secret, clk.Now().Add(time.Duration(skew)*time.Second), body) + header
		}
		send := func() int {
			req := httptest.NewRequest(http.MethodPost, WebhookPathPrefix+"acme", bytes.NewReader(body))
			req.Header.Set(SignatureHeader, header)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			wh.ServeHTTP(rec, req)
			return rec.Code
		}
		before := snapshot(c)
		code := send()
		_, perr := ParsePage(bytes.NewReader(body), 0)
		valid := sign && skew >= -300 && skew <= 300 && perr == nil && len(body) <= MaxWebhookBody
		if code != http.StatusOK {
			require.Equal(t, before, snapshot(c), "a refused push changes nothing (status %d)", code)
			require.False(t, valid && plain, "a valid push was refused with %d", code)
			return
		}
		require.True(t, valid, "only a signed, fresh, well-formed push is accepted")
		after := snapshot(c)
		require.Equal(t, http.StatusUnauthorized, send(), "a replay is refused")
		require.Equal(t, after, snapshot(c), "a replay changes nothing")
	})
}

// cacheSnapshot is what the fuzz targets compare to see that nothing
// changed.
type cacheSnapshot struct {
	Len      int
	Counts   [5]int
	Sentinel Risk
	LastSync time.Time
}

func snapshot(c *Cache) cacheSnapshot {
	ls, _ := c.LastSync("acme")
	return cacheSnapshot{Len: c.Len("acme"), Counts: c.Counts("acme"), Sentinel: c.Lookup("sentinel"), LastSync: ls}
}

// FuzzLoadState checks that a state file either restores completely or,
// corrupt or truncated, changes nothing and never panics; and that what
// was restored saves into a file that loads again.
func FuzzLoadState(f *testing.F) {
	good := sample(f, "state.jsonl")
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(bytes.Replace(good, []byte(`"l":4`), []byte(`"l":9`), 1))
	f.Add(bytes.Replace(good, []byte(`{"end":7}`), []byte(`{"end":6}`), 1))
	f.Add(append(bytes.Clone(good), "{}\n"...))
	f.Add([]byte(`{"riskgate_state":1}` + "\n" + `{"end":1}`))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "state.jsonl")
		require.NoError(t, os.WriteFile(path, b, 0o600))
		clk := newClock()
		c := New(Options{Now: clk.Now, Vendors: []string{"acme", "other"}})
		c.Apply("acme", []Report{{DeviceID: "sentinel", Level: policy.LevelLow, User: "s@corp.example"}})
		c.MarkSynced("acme", clk.Now().Add(-time.Hour))
		before, otherLen := snapshot(c), c.Len("other")
		err := LoadState(path, c)
		if err != nil {
			require.Equal(t, before, snapshot(c), "a bad state file restores nothing: %v", err)
			require.Equal(t, otherLen, c.Len("other"))
			return
		}
		require.NoError(t, readState(bytes.NewReader(b), nil))
		var out bytes.Buffer
		require.NoError(t, writeState(&out, c))
		require.NoError(t, readState(&out, nil), "what was restored saves into a readable file")
	})
}
