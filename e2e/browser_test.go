package e2e_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const chromiumPath = "/usr/bin/chromium"

// navLog records every URL the browser requests, redirect hops included, so
// that a test can tell whether the browser went to the identity issuer, and
// every request Chromium blocked (a Content-Security-Policy violation, for
// example).
type navLog struct {
	mu      sync.Mutex
	urls    []string
	blocked []string
}

func (l *navLog) listen(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if ev.Request != nil {
			l.mu.Lock()
			l.urls = append(l.urls, ev.Request.URL)
			l.mu.Unlock()
		}
	case *cdplog.EventEntryAdded:
		// Chromium reports a Content-Security-Policy violation (a form
		// submission refused by form-action, for example) as a log entry.
		if ev.Entry != nil && strings.Contains(ev.Entry.Text, "Content Security Policy") {
			l.mu.Lock()
			l.blocked = append(l.blocked, ev.Entry.Text)
			l.mu.Unlock()
		}
	case *network.EventLoadingFailed:
		if ev.BlockedReason != "" || strings.Contains(ev.ErrorText, "BLOCKED") {
			l.mu.Lock()
			l.blocked = append(l.blocked, fmt.Sprintf("%s %s (%s %s)", ev.Type, ev.RequestID, ev.BlockedReason, ev.ErrorText))
			l.mu.Unlock()
		}
	}
}

// blockedRequests returns the requests Chromium blocked and the Content
// Security Policy violations it reported so far.
func (l *navLog) blockedRequests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.blocked...)
}

// count is the number of URLs requested so far.
func (l *navLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.urls)
}

// since returns the URLs requested after the first n, and the new count.
func (l *navLog) since(n int) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.urls[n:]...), len(l.urls)
}

// withPrefix returns the urls that start with prefix.
func withPrefix(urls []string, prefix string) []string {
	var out []string
	for _, u := range urls {
		if strings.HasPrefix(u, prefix) {
			out = append(out, u)
		}
	}
	return out
}

// screenshotDir is $RISKGATE_SCREENSHOTS (created if needed) or a
// temporary directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("RISKGATE_SCREENSHOTS"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	return t.TempDir()
}

// demo is a running `riskgate demo` and the URLs a browser uses.
type demo struct {
	proxyURL, idpURL, vendorURL, mailURL string
}

// startDemo runs `riskgate demo` on free ports until the test ends and
// waits until it is ready.
func startDemo(t *testing.T) demo {
	t.Helper()
	addr := map[string]string{}
	for _, name := range []string{"proxy", "admin", "idp", "vendor", "mail", "docs"} {
		addr[name] = freeAddr(t)
	}
	args := []string{"demo", "-v", "--dir", t.TempDir()}
	for name, a := range addr {
		args = append(args, "--"+name, a)
	}
	p := startRiskgate(t, args...)
	p.waitReady(t, addr["admin"], 30*time.Second)
	d := demo{proxyURL: "http://" + addr["proxy"], idpURL: "http://" + addr["idp"], vendorURL: "http://" + addr["vendor"]}
	d.mailURL = d.proxyURL + "/mail/"
	return d
}

// chromium is a headless Chromium emulating a phone, for one test.
type chromium struct {
	t     *testing.T
	ctx   context.Context
	nav   *navLog
	shots string
}

// skipWithoutChromium skips the test when headless Chromium is not
// installed.
func skipWithoutChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("headless Chromium not available at %s (%v): install chromium to run the browser test", chromiumPath, err)
	}
}

// newBrowser starts headless Chromium; it is stopped when the test ends
// (before the servers it talks to, when those were started first).
func newBrowser(t *testing.T) *chromium {
	t.Helper()
	skipWithoutChromium(t)
	start := time.Now()
	// The browser's life is bound to this context (chromedp: the first Run
	// binds it), not to t.Context(), which ends before the cleanups run.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844),
	)
	t.Cleanup(cancelAlloc)
	nav := &navLog{}
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithListener(nav.listen))
	t.Cleanup(cancelBrowser)
	ctx, cancel := context.WithTimeout(browserCtx, 2*time.Minute)
	t.Cleanup(cancel)

	// A phone: 390x844 CSS pixels at device pixel ratio 2.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)),
		"start Chromium")
	t.Logf("Chromium started after %s", time.Since(start).Round(time.Millisecond))
	return &chromium{t: t, ctx: ctx, nav: nav, shots: screenshotDir(t)}
}

// screenshot saves the whole page as name in the screenshot directory.
func (b *chromium) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG
	require.NoError(b.t, err, "screenshot %s", name)
	path := filepath.Join(b.shots, name)
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot: %s", path)
}

// location is the URL of the current page.
func (b *chromium) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(b.t, err)
	return loc
}

// bodyText is the text of the current page.
func (b *chromium) bodyText() string {
	b.t.Helper()
	txt, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	require.NoError(b.t, err)
	return txt
}

// aliceButton is the development issuer's button that signs in as Alice.
var aliceButton = chromedp.CSS(`button[name="user"][value="alice@corp.example"]`)

// signInToMail opens Mail without a session, checks that riskgate sends
// the browser to the issuer's user picker, picks Alice and checks that Mail
// opens with her identity. A non-empty signInShot and mailShot name
// screenshots of the user picker and of Mail.
func (b *chromium) signInToMail(d demo, signInShot, mailShot string) {
	t := b.t
	t.Helper()
	signInStart := time.Now()
	n := b.nav.count()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(d.mailURL))
	require.NoError(t, err)
	assert.EqualValues(t, 200, resp.Status)
	loc := b.location()
	require.True(t, strings.HasPrefix(loc, d.idpURL+"/"), "expected the issuer's sign-in page, at %s", loc)
	seen, _ := b.nav.since(n)
	assert.NotEmpty(t, withPrefix(seen, d.proxyURL+"/.riskgate/login?"), "went through riskgate's login path: %v", seen)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	q := u.Query()
	assert.Equal(t, "riskgate", q.Get("client_id"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"), "PKCE")
	assert.NotEmpty(t, q.Get("state"))
	assert.NotEmpty(t, q.Get("nonce"))
	assert.Equal(t, d.proxyURL+"/.riskgate/callback", q.Get("redirect_uri"))
	require.NoError(t, chromedp.Do(b.ctx, chromedp.WaitVisible(aliceButton)))
	assert.Contains(t, b.bodyText(), "Sign in to riskgate")
	if signInShot != "" {
		b.screenshot(signInShot)
	}

	// Pick Alice: back through the callback to Mail, with her identity.
	resp, err = chromedp.RunResponse(b.ctx, chromedp.Click(aliceButton))
	require.NoError(t, err)
	assert.EqualValues(t, 200, resp.Status)
	assert.Equal(t, d.mailURL, b.location())
	b.assertSignedInToMail()
	headers := upstreamHeaders(t, b.ctx)
	assert.Equal(t, "alice@corp.example", headers["X-Forwarded-Email"])
	assert.Equal(t, "alice-iphone", headers["X-Riskgate-Device-Id"])
	assert.Equal(t, "secured", headers["X-Riskgate-Risk"])
	t.Logf("signed in to Mail in %s", time.Since(signInStart).Round(time.Millisecond))
	if mailShot != "" {
		b.screenshot(mailShot)
	}
	seen, _ = b.nav.since(n)
	require.NotEmpty(t, withPrefix(seen, d.idpURL), "the sign-in went to the issuer")
}

// assertSignedInToMail checks that the page is Mail, opened as Alice.
func (b *chromium) assertSignedInToMail() {
	t := b.t
	t.Helper()
	require.NoError(t, chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS("header h1"))))
	heading, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("header")))
	require.NoError(t, err)
	assert.Contains(t, heading, "Mail")
	assert.Contains(t, heading, "signed in as alice@corp.example")
	assert.Equal(t, "alice@corp.example", upstreamHeaders(t, b.ctx)["X-Forwarded-User"])
}

// TestBrowserSignInBlockAndRecover walks through `riskgate demo` in a real
// headless Chromium the way its README tells a person to: sign in to Mail
// as Alice through the development issuer, have the simulated MTD vendor
// report her phone as high risk, see the block page, have the vendor report
// it secured again, and get Mail back without signing in again.
func TestBrowserSignInBlockAndRecover(t *testing.T) {
	skipWithoutChromium(t)
	start := time.Now()
	d := startDemo(t)
	b := newBrowser(t)
	ctx := b.ctx
	proxyURL, idpURL, vendorURL, mailURL := d.proxyURL, d.idpURL, d.vendorURL, d.mailURL
	location, bodyText, screenshot := b.location, b.bodyText, b.screenshot

	// 1. Mail without a session: riskgate sends the browser to the issuer.
	// 2. Pick Alice: back through the callback to Mail, with her identity.
	b.signInToMail(d, "1-sign-in.png", "2-mail.png")
	mark := b.nav.count()

	// 3. The vendor reports Alice's phone as high risk.
	setRisk(t, ctx, vendorURL, "alice-iphone", "high")

	// 4. Reload Mail until riskgate's next sync blocks it.
	flipped := time.Now()
	var (
		blockStatus int64
		blockReqID  string
	)
	poll(t, 20*time.Second, 250*time.Millisecond, "Mail blocked after alice-iphone turned high", func() error {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(mailURL))
		if err != nil {
			return err
		}
		if resp.Status != 403 {
			return fmt.Errorf("status %d at %s", resp.Status, resp.URL)
		}
		blockStatus = resp.Status
		for k, v := range resp.Headers {
			if strings.EqualFold(k, "X-Request-Id") {
				blockReqID, _ = v.(string)
			}
		}
		return nil
	})
	t.Logf("blocked %s after the vendor change", time.Since(flipped).Round(time.Millisecond))
	assert.EqualValues(t, 403, blockStatus)
	assert.Equal(t, mailURL, location(), "the block page is served at the blocked URL")
	text := bodyText()
	assert.Contains(t, text, "This device can't open Mail right now")
	assert.Contains(t, text, "rates this device's risk as high")
	assert.Contains(t, text, "Mail only opens on devices rated low or lower")
	assert.Contains(t, text, "Open the demo-mtd threat-defense app on this device and resolve every threat")
	assert.Contains(t, text, "Access comes back on its own")
	details, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll('.details dt')].map(dt => [dt.textContent, dt.nextElementSibling.textContent]))`))
	require.NoError(t, err)
	assert.Equal(t, "risk_too_high", details["Reason"])
	assert.Equal(t, "mail-device-risk", details["Policy"])
	assert.Equal(t, "high", details["Risk"])
	assert.Equal(t, "demo-mtd", details["Reported by"])
	retry, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll('a.btn')].filter(a => a.textContent.trim() == 'Try again').map(a => a.href).join(' ')`))
	require.NoError(t, err)
	assert.Equal(t, mailURL, retry, "a Try again link back to Mail")
	assert.Regexp(t, `^[0-9a-f]{12}-[0-9a-z]+$`, details["Request id"], "request id for the helpdesk")
	assert.Equal(t, blockReqID, details["Request id"], "the page shows the X-Request-Id of its response")
	screenshot("3-blocked.png")

	// 5. The vendor reports the phone remediated: Mail comes back on its
	// own, with the same session.
	setRisk(t, ctx, vendorURL, "alice-iphone", "secured")
	flipped = time.Now()
	poll(t, 20*time.Second, 250*time.Millisecond, "Mail back after alice-iphone turned secured", func() error {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(mailURL))
		if err != nil {
			return err
		}
		if resp.Status != 200 || resp.URL != mailURL {
			return fmt.Errorf("status %d at %s", resp.Status, resp.URL)
		}
		return nil
	})
	t.Logf("Mail back %s after the vendor change", time.Since(flipped).Round(time.Millisecond))
	b.assertSignedInToMail()
	assert.Equal(t, "secured", upstreamHeaders(t, ctx)["X-Riskgate-Risk"])
	assert.Equal(t, mailURL, location())

	seen, _ := b.nav.since(mark)
	assert.Empty(t, withPrefix(seen, idpURL), "no new sign-in at the issuer")
	assert.Empty(t, withPrefix(seen, proxyURL+"/.riskgate/"), "no new sign-in at riskgate")
	for _, u := range seen {
		assert.True(t, strings.HasPrefix(u, proxyURL+"/") || strings.HasPrefix(u, vendorURL+"/"),
			"only the proxy and the vendor page were visited after sign-in, not %s", u)
	}
	t.Logf("browser test took %s", time.Since(start).Round(time.Millisecond))
}

// upstreamHeaders reads the table of headers riskgate added, as the demo
// app shows it.
func upstreamHeaders(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	h, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll('tbody tr')].filter(tr => tr.cells.length == 2).map(tr => [tr.cells[0].textContent, tr.cells[1].textContent]))`))
	require.NoError(t, err)
	return h
}

// setRisk opens the simulated vendor's page and presses the button that
// sets device's risk, then checks that the page shows the new level.
func setRisk(t *testing.T, ctx context.Context, vendorURL, device, level string) {
	t.Helper()
	card := fmt.Sprintf(`section.card:has(input[name="device"][value=%q])`, device)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(vendorURL+"/")))
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(card+fmt.Sprintf(` button[name="risk"][value=%q]`, level))))
	require.NoError(t, err, "set %s to %s", device, level)
	assert.EqualValues(t, 200, resp.Status)
	assert.Equal(t, vendorURL+"/", resp.URL, "the vendor page redirects back to itself")
	badge, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(card+" .badge")))
	require.NoError(t, err)
	require.Equal(t, level, badge, "the vendor page shows %s as %s", device, level)
}
