package riskcache_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// vendorShape is how one vendor type lays out a page, for building bad
// answers of the right and of the wrong shape.
type vendorShape struct {
	sample string // testdata/samples file
	list   string // the member holding the device list
	// badID is a device without any id; badType one whose risk has the
	// wrong JSON type.
	badID, badType string
	// foreign is a page of one device (the client's page size is 1) whose
	// cursor or next link is a URL on another host.
	foreign func(other string) string
}

var shapes = map[string]vendorShape{
	riskcache.TypeGeneric: {"generic.json", "devices", `{"risk":"secured"}`, `{"device_id":"dev-000","risk":3}`,
		func(o string) string {
			return `{"devices":[{"device_id":"dev-000","risk":"low"}],"next_cursor":"` + o + `/x","has_more":true}`
		}},
	riskcache.TypeGraph: {"graph.json", "value", `{"partnerReportedThreatState":"secured"}`, `{"id":"dev-000","partnerReportedThreatState":3}`,
		func(o string) string {
			return `{"value":[{"id":"dev-000","partnerReportedThreatState":"lowSeverity"}],"@odata.nextLink":"` + o + `/v1.0/deviceManagement/managedDevices"}`
		}},
	riskcache.TypeLookout: {"lookout.json", "devices", `{"security_status":"SECURE"}`, `{"guid":"dev-000","security_status":3}`,
		func(o string) string {
			return `{"devices":[{"guid":"dev-000","oid":"` + o + `/x","security_status":"THREATS_LOW"}]}`
		}},
	riskcache.TypeZimperium: {"zimperium.json", "content", `{"riskPostureName":"NORMAL"}`, `{"id":"dev-000","riskPostureName":3}`,
		func(o string) string {
			return `{"content":[{"id":"dev-000","riskPostureName":"LOW"}],"scrollId":"` + o + `/x"}`
		}},
	riskcache.TypeCheckPoint: {"checkpoint.json", "objects", `{"risk":0,"status":1}`, `{"id":"dev-000","risk":{},"status":1}`,
		func(o string) string {
			return `{"meta":{"next":"` + o + `/x"},"objects":[{"id":"dev-000","risk":1,"status":1}]}`
		}},
}

// goodDevice is a device of the right shape for the vendor.
func goodDevice(typ string) string {
	switch typ {
	case riskcache.TypeGraph:
		return `{"id":"new-1","partnerReportedThreatState":"secured"}`
	case riskcache.TypeLookout:
		return `{"guid":"new-1","oid":1,"security_status":"SECURE","activation_status":"ACTIVATED"}`
	case riskcache.TypeZimperium:
		return `{"id":"new-1","riskPostureName":"NORMAL"}`
	case riskcache.TypeCheckPoint:
		return `{"id":"new-1","risk":0,"status":1}`
	}
	return `{"device_id":"new-1","risk":"secured"}`
}

// robustFixture is a cache holding a vendor's last good data, synced from
// its simulator.
type robustFixture struct {
	vc    vendorCase
	store *vendorsim.Store
	sim   simulator
	srv   *httptest.Server
	cache *riskcache.Cache
	clock *fakeNow
	name  string
	ids   []string
}

type fakeNow struct{ t atomic.Int64 }

func (c *fakeNow) Now() time.Time { return time.Unix(0, c.t.Load()) }

func newRobustFixture(t *testing.T, vc vendorCase) *robustFixture {
	f := &robustFixture{vc: vc, clock: &fakeNow{}}
	f.clock.t.Store(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixNano())
	f.store, f.sim, f.srv = startSim(t, vc)
	seed(f.store, 3)
	f.name = vc.vendor(f.srv.URL).Name
	f.cache = riskcache.New(riskcache.Options{Now: f.clock.Now, Vendors: []string{f.name}, MaxAge: time.Hour})
	prefix := "aad" // reported under the MDM's id
	if vc.typ == riskcache.TypeGeneric {
		prefix = "dev" // the generic API has one id
	}
	for i := range 3 {
		f.ids = append(f.ids, fmt.Sprintf("%s-%03d", prefix, i))
	}
	require.NoError(t, f.sync(t, func(*policy.Vendor) {}, nil))
	for _, id := range f.ids {
		require.True(t, f.cache.Lookup(id).Known, id)
	}
	// What the vendor says now would change the cache if a sync got through.
	for i := range 3 {
		require.True(t, f.store.SetLevel(fmt.Sprintf("dev-%03d", i), policy.LevelHigh))
	}
	return f
}

// sync runs one full sync with a new source configured by edit (tuned by
// tune, when set) and advances the clock.
func (f *robustFixture) sync(t *testing.T, edit func(*policy.Vendor), tune func(riskcache.Source)) error {
	t.Helper()
	f.clock.t.Add(int64(time.Minute))
	v := f.vc.vendor(f.srv.URL)
	edit(&v)
	src := newSource(t, v, f.srv.Client())
	if tune != nil {
		tune(src)
	}
	s := riskcache.NewSyncer(riskcache.SyncerOptions{Vendor: f.name, Source: src, Cache: f.cache,
		Now: f.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	return s.SyncOnce(t.Context())
}

type cacheState struct {
	risks    []riskcache.Risk
	n        int
	lastSync time.Time
}

func (f *robustFixture) state() cacheState {
	s := cacheState{n: f.cache.Len(f.name)}
	s.lastSync, _ = f.cache.LastSync(f.name)
	for _, id := range f.ids {
		s.risks = append(s.risks, f.cache.Lookup(id))
	}
	return s
}

// TestBadVendorAnswerKeepsLastGoodData checks DESIGN.md's rule that a bad
// vendor answer keeps the last good risk data, for every vendor type
// against its simulator: the sync fails, nothing in the cache changes (no
// device is updated or swept, the vendor is not marked synced), and the
// next good answer is applied.
func TestBadVendorAnswerKeepsLastGoodData(t *testing.T) {
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		fmt.Fprint(w, `{"devices":[],"value":[],"content":[],"objects":[]}`)
	}))
	t.Cleanup(other.Close)

	for _, vc := range vendorCases() {
		sh := shapes[vc.typ]
		good, err := os.ReadFile(filepath.Join("testdata", "samples", sh.sample))
		require.NoError(t, err)
		list := func(body string) string { return `{"` + sh.list + `":` + body + `}` }
		cases := []struct {
			name  string
			fault vendorsim.Fault
			slow  bool
			edit  func(*policy.Vendor)
			tune  func(riskcache.Source)
			check func(t *testing.T, err error)
		}{
			{name: "truncated mid-page", fault: vendorsim.Fault{Body: string(good[:len(good)/2])}},
			{name: "list is an object", fault: vendorsim.Fault{Body: list(`{}`)}},
			{name: "list is a number", fault: vendorsim.Fault{Body: list(`5`)}},
			{name: "list is null", fault: vendorsim.Fault{Body: list(`null`)}},
			{name: "empty object", fault: vendorsim.Fault{Body: `{}`}},
			{name: "null", fault: vendorsim.Fault{Body: `null`}},
			{name: "error object with 200", fault: vendorsim.Fault{Body: `{"error":"internal","message":"try later"}`}},
			{name: "device without id among good", fault: vendorsim.Fault{Body: list(`[` + goodDevice(vc.typ) + `,` + sh.badID + `]`)}},
			{name: "risk of the wrong type among good", fault: vendorsim.Fault{Body: list(`[` + goodDevice(vc.typ) + `,` + sh.badType + `]`)}},
			{name: "device that is not an object", fault: vendorsim.Fault{Body: list(`[` + goodDevice(vc.typ) + `,"x"]`)}},
			{name: "two JSON values", fault: vendorsim.Fault{Body: list(`[`+goodDevice(vc.typ)+`]`) + list(`[]`)}},
			{name: "empty 200", fault: vendorsim.Fault{Empty: true}},
			{name: "captive portal HTML", fault: vendorsim.Fault{ContentType: "text/html",
				Body: "<!DOCTYPE html><html><body><form>Accept the Wi-Fi terms</form></body></html>"}},
			{name: "redirect to another host", fault: vendorsim.Fault{Status: http.StatusFound, Location: other.URL + "/devices"},
				check: func(t *testing.T, err error) { assert.ErrorContains(t, err, "refused") }},
			{name: "body over the bound", fault: vendorsim.Fault{Body: list(`[` + goodDevice(vc.typ) + strings.Repeat(" ", 8<<10) + `]`)},
				tune:  func(s riskcache.Source) { riskcache.SetMaxBody(s, 4<<10) },
				check: func(t *testing.T, err error) { assert.ErrorContains(t, err, "exceeds 4096 bytes") }},
			{name: "slow vendor", slow: true,
				edit:  func(v *policy.Vendor) { v.Timeout = policy.Duration{Duration: 100 * time.Millisecond} },
				check: func(t *testing.T, err error) { assert.ErrorIs(t, err, context.DeadlineExceeded) }},
			{name: "cursor on another host", fault: vendorsim.Fault{Body: sh.foreign(other.URL)},
				edit: func(v *policy.Vendor) { v.PageSize = 1 }},
		}
		for _, c := range cases {
			t.Run(vc.typ+"/"+c.name, func(t *testing.T) {
				f := newRobustFixture(t, vc)
				if c.slow {
					hang := make(chan struct{})
					// Runs before the simulator's Close, which waits for it.
					t.Cleanup(func() { close(hang) })
					c.fault.Hang = hang
				}
				before := f.state()
				f.sim.Inject(c.fault)
				edit := c.edit
				if edit == nil {
					edit = func(*policy.Vendor) {}
				}
				err := f.sync(t, edit, c.tune)
				after := f.state()
				switch {
				case c.name == "cursor on another host" && vc.typ == riskcache.TypeCheckPoint:
					// meta.next only says that more follows; the next
					// request asks the configured host for the next offset.
					require.NoError(t, err)
				case c.name == "cursor on another host":
					// Graph refuses the link; for the others the cursor is
					// a query value sent to the configured host, which
					// refuses it. The first page was good and is applied
					// (earlier pages of a failed sync are kept); nothing is
					// swept and the vendor is not marked synced.
					require.Error(t, err)
					assert.GreaterOrEqual(t, after.n, before.n)
					assert.Equal(t, before.lastSync, after.lastSync)
				default:
					require.Error(t, err)
					assert.Equal(t, before, after, "a bad answer changes nothing")
				}
				if c.check != nil {
					c.check(t, err)
				}
				assert.Zero(t, otherHits.Load(), "nothing is sent to another host")

				require.NoError(t, f.sync(t, edit, nil), "the next good answer is applied")
				for _, id := range f.ids {
					assert.Equal(t, policy.LevelHigh, f.cache.Lookup(id).Level, id)
				}
			})
		}
	}
}

// TestOddRiskValuesAreNeverSecured: values with other case or white space
// than the documented ones are unknown (the generic API documents any
// case), never secured, and never a lower level.
func TestOddRiskValuesAreNeverSecured(t *testing.T) {
	odd := map[string][]levelCase{
		riskcache.TypeGraph: {{raw: " secured", want: policy.LevelUnknown}, {raw: "secured\n", want: policy.LevelUnknown},
			{raw: "SECURED", want: policy.LevelUnknown}, {raw: "ſecured", want: policy.LevelUnknown}, {raw: "HighSeverity", want: policy.LevelUnknown}},
		riskcache.TypeLookout: {{raw: "SECURE ", want: policy.LevelUnknown}, {raw: "Secure", want: policy.LevelUnknown},
			{raw: "\u00a0SECURE", want: policy.LevelUnknown}, {raw: "threats_high", want: policy.LevelUnknown}},
		riskcache.TypeZimperium: {{raw: "normal", want: policy.LevelUnknown}, {raw: " NORMAL", want: policy.LevelUnknown},
			{raw: "NORMAL\t", want: policy.LevelUnknown}},
		riskcache.TypeCheckPoint: {{raw: " 0", want: policy.LevelUnknown}, {raw: "0.0", want: policy.LevelUnknown},
			{raw: "-0", want: policy.LevelUnknown}, {raw: "zero", want: policy.LevelUnknown}},
		riskcache.TypeGeneric: {{raw: "Secured", want: policy.LevelSecured}, {raw: "HIGH", want: policy.LevelHigh},
			{raw: " secured", want: policy.LevelUnknown}, {raw: "secured ", want: policy.LevelUnknown},
			{raw: "ſecured", want: policy.LevelUnknown}, {raw: "securéd", want: policy.LevelUnknown}},
	}
	for _, vc := range vendorCases() {
		t.Run(vc.typ, func(t *testing.T) {
			var level func(string) policy.Level
			switch vc.typ {
			case riskcache.TypeGraph:
				level = riskcache.GraphLevel
			case riskcache.TypeLookout:
				level = riskcache.LookoutLevel
			case riskcache.TypeZimperium:
				level = riskcache.ZimperiumLevel
			case riskcache.TypeGeneric:
				level = riskcache.GenericLevel
			}
			testLevels(t, vc, odd[vc.typ], level)
		})
	}
}
