package dextest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// maxSteps bounds the pages DexLogin goes through.
const maxSteps = 10

// DexLogin signs user in through Dex's real HTML pages the way a browser
// does, starting at authURL: either Dex's authorization URL or a relying
// party's login URL that redirects to it (riskgate's /.riskgate/login). It
// follows redirects, fills in and posts Dex's password form, grants access
// if Dex asks, and stops at the first redirect that carries the answer for
// the relying party (a "code" or "error" query parameter), whose URL it
// returns without following it. The client should have a cookie jar (the
// relying party's state cookie and Dex's own need one); client is not
// modified.
func DexLogin(client *http.Client, authURL, user, password string) (redirectURL string, err error) {
	c := *client
	var answer *url.URL
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		q := req.URL.Query()
		if q.Has("code") || q.Has("error") {
			answer = req.URL
			return http.ErrUseLastResponse
		}
		if len(via) >= 20 {
			return errors.New("dextest: too many redirects")
		}
		return nil
	}

	resp, err := c.Get(authURL)
	postedPassword := false
	for range maxSteps {
		if err != nil {
			return "", fmt.Errorf("dextest: login: %w", err)
		}
		if answer != nil {
			resp.Body.Close()
			return answer.String(), nil
		}
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if rerr != nil {
			return "", fmt.Errorf("dextest: login: read %s: %w", resp.Request.URL, rerr)
		}
		if postedPassword && resp.StatusCode == http.StatusUnauthorized {
			// Dex shows the password form again, with a 401.
			return "", fmt.Errorf("dextest: login: dex refused the password of %q", user)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("dextest: login: %s: status %d: %s", resp.Request.URL, resp.StatusCode, snippet(body))
		}
		doc, perr := html.Parse(strings.NewReader(string(body)))
		if perr != nil {
			return "", fmt.Errorf("dextest: login: parse %s: %w", resp.Request.URL, perr)
		}
		page := resp.Request.URL
		forms := findForms(doc)
		switch f, kind := pick(forms); kind {
		case "password":
			if postedPassword {
				return "", fmt.Errorf("dextest: login: dex refused the password of %q: %s", user, snippet(body))
			}
			postedPassword = true
			f.values.Set("login", user)
			f.values.Set("password", password)
			resp, err = submit(&c, page, f)
		case "approval":
			f.values.Set("approval", "approve")
			resp, err = submit(&c, page, f)
		default:
			// Dex's connector chooser: follow the password connector's link.
			link := findLink(doc, "/auth/local")
			if link == "" {
				return "", fmt.Errorf("dextest: login: %s: no login form, approval form or password connector link: %s", page, snippet(body))
			}
			u, uerr := page.Parse(link)
			if uerr != nil {
				return "", fmt.Errorf("dextest: login: link %q: %w", link, uerr)
			}
			resp, err = c.Get(u.String())
		}
	}
	if err == nil {
		resp.Body.Close()
	}
	return "", fmt.Errorf("dextest: login: no redirect to the relying party after %d pages", maxSteps)
}

type form struct {
	action string
	method string
	values url.Values
}

// pick finds the form to submit: the password form or the approval form.
func pick(forms []form) (form, string) {
	for _, f := range forms {
		if f.values.Has("password") {
			return f, "password"
		}
	}
	for _, f := range forms {
		if f.values.Get("approval") == "approve" {
			return f, "approval"
		}
	}
	return form{}, ""
}

func submit(c *http.Client, page *url.URL, f form) (*http.Response, error) {
	target, err := page.Parse(f.action)
	if err != nil {
		return nil, fmt.Errorf("form action %q: %w", f.action, err)
	}
	if strings.EqualFold(f.method, http.MethodGet) {
		target.RawQuery = f.values.Encode()
		return c.Get(target.String())
	}
	return c.PostForm(target.String(), f.values)
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// findForms returns every form with its named input values.
func findForms(doc *html.Node) []form {
	var forms []form
	var cur *form
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				action, _ := attr(n, "action")
				method, _ := attr(n, "method")
				forms = append(forms, form{action: action, method: method, values: url.Values{}})
				cur = &forms[len(forms)-1]
				for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
					walk(ch)
				}
				cur = nil
				return
			case "input":
				if cur != nil {
					name, _ := attr(n, "name")
					typ, _ := attr(n, "type")
					val, _ := attr(n, "value")
					_, checked := attr(n, "checked")
					if name != "" && ((typ != "checkbox" && typ != "radio") || checked) {
						cur.values.Set(name, val)
					}
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(doc)
	return forms
}

// findLink returns the first href containing part.
func findLink(n *html.Node, part string) string {
	if n.Type == html.ElementNode && n.Data == "a" {
		if href, ok := attr(n, "href"); ok && strings.Contains(href, part) {
			return href
		}
	}
	for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
		if l := findLink(ch, part); l != "" {
			return l
		}
	}
	return ""
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
