// Package demoapp is a sample upstream web application for `riskgate demo`
// ("Mail", "Docs"): it shows who riskgate says is signed in and every header
// riskgate added to the request, so that a decision can be seen end to end.
package demoapp

import (
	"bytes"
	"encoding/json"
	"html/template"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// Header is one request header riskgate added.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// View is what the app shows, and its JSON form.
type View struct {
	App    string `json:"app"`
	User   string `json:"user"`
	Method string `json:"method"`
	Path   string `json:"path"`
	// Headers are the X-Forwarded-*, X-Riskgate-* and X-Request-Id headers,
	// sorted by name.
	Headers []Header `json:"headers"`
}

const pageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.App}} · riskgate demo</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d4ed8;color:#fff;padding:1rem}
header h1{margin:0;font-size:1.5rem}
header p{margin:.3rem 0 0;word-break:break-all}
main{max-width:40rem;margin:0 auto;padding:1rem}
.note{color:#475467;font-size:.9rem}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:.6rem;overflow:hidden;font-size:.9rem}
th,td{text-align:left;padding:.5rem .6rem;border-bottom:1px solid #e4e7ec;vertical-align:top}
th{background:#eef2f6;font-weight:600}
td{word-break:break-all}
td:first-child{white-space:nowrap;word-break:normal;font-family:ui-monospace,monospace}
</style></head><body>
<header><h1>{{.App}}</h1><p>signed in as <strong>{{if .User}}{{.User}}{{else}}(nobody: no X-Forwarded-User){{end}}</strong></p></header>
<main>
<p class="note">A sample app behind riskgate. {{.Method}} <code>{{.Path}}</code></p>
<h2>Headers riskgate added</h2>
<table><thead><tr><th>header</th><th>value</th></tr></thead><tbody>
{{range .Headers}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>
{{else}}<tr><td colspan="2">none: this request did not come through riskgate</td></tr>
{{end}}</tbody></table>
</main></body></html>
`

type app struct {
	name string
	page *template.Template
}

// New returns the app called name. It answers every path and method with a
// page (or JSON, for Accept: application/json) describing the request.
func New(name string) http.Handler {
	return &app{name: name, page: template.Must(template.New("page").Parse(pageHTML))}
}

// view describes r.
func (a *app) view(r *http.Request) View {
	v := View{App: a.name, User: r.Header.Get("X-Forwarded-User"), Method: r.Method, Path: r.URL.RequestURI(), Headers: []Header{}}
	for name, vals := range r.Header {
		l := strings.ToLower(name)
		if strings.HasPrefix(l, "x-forwarded-") || strings.HasPrefix(l, "x-riskgate-") || l == "x-request-id" {
			v.Headers = append(v.Headers, Header{Name: name, Value: strings.Join(vals, ", ")})
		}
	}
	slices.SortFunc(v.Headers, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	return v
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := a.view(r)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Accept")
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
		return
	}
	var buf bytes.Buffer
	if err := a.page.Execute(&buf, v); err != nil {
		http.Error(w, "demoapp: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// wantsJSON reports whether the client asks for application/json before
// text/html.
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json":
			return true
		case "text/html":
			return false
		}
	}
	return false
}
