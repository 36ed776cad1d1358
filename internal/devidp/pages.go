package devidp

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
)

// pagesHTML are the issuer's pages. Each says, first, that this is a
// development issuer.
const pagesHTML = `
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · devidp (development only)</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
.dev{background:#b42318;color:#fff;padding:.6rem 1rem;font-weight:600;text-align:center}
main{max-width:34rem;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.8rem 0}
.card{display:block;width:100%;box-sizing:border-box;text-align:left;background:#fff;border:1px solid #d0d5dd;border-radius:.8rem;padding:.9rem 1rem;margin:.7rem 0;font:inherit;color:inherit;cursor:pointer}
button.card:hover,button.card:focus{border-color:#2e6bd6;box-shadow:0 0 0 3px #c9dafb}
.hint{border-color:#2e6bd6}
.name{font-weight:600;font-size:1.1rem}
.meta{color:#475467;font-size:.9rem;margin-top:.25rem;word-break:break-all}
.tag{display:inline-block;background:#eef2f6;border-radius:1rem;padding:0 .5rem;margin:.1rem .2rem 0 0;font-size:.8rem}
code{background:#eef2f6;padding:0 .25rem;border-radius:.25rem;word-break:break-all}
.err{color:#b42318}
</style></head><body>
<div class="dev" role="alert">devidp: development OIDC issuer. Not for production: anyone can sign in as anyone.</div>
<main>{{end}}

{{define "foot"}}</main></body></html>{{end}}

{{define "user"}}<div class="name">{{.Name}}</div>
<div class="meta">{{.Email}}</div>
<div class="meta">groups: {{range .Groups}}<span class="tag">{{.}}</span>{{else}}none{{end}}</div>
<div class="meta">demo device: {{if .DeviceID}}<code>{{.DeviceID}}</code>{{else}}none{{end}}</div>{{end}}

{{define "login"}}{{template "head" .}}
<h1>Sign in to {{.Client}}</h1>
<p>Pick a demo user. There is no password: this issuer is for development only.</p>
<form method="post" action="{{.Action}}">
{{range .Params}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}{{$hint := .Hint}}{{range .Users}}<button class="card{{if eq $hint (lower .Email)}} hint{{end}}" type="submit" name="user" value="{{.Email}}">{{template "user" .}}</button>
{{end}}</form>
{{template "foot" .}}{{end}}

{{define "home"}}{{template "head" .}}
<h1>devidp</h1>
<p>A development OpenID Connect issuer at <code>{{.Issuer}}</code>. Its discovery document is at
<a href="{{.Issuer}}/.well-known/openid-configuration"><code>/.well-known/openid-configuration</code></a>.</p>
<h2>Demo users</h2>
{{range .Users}}<div class="card">{{template "user" .}}</div>
{{end}}{{template "foot" .}}{{end}}

{{define "loggedout"}}{{template "head" .}}
<h1>Signed out</h1>
<p>You have signed out. devidp keeps no session of its own, so the next sign-in asks you to pick a user again.</p>
{{template "foot" .}}{{end}}

{{define "error"}}{{template "head" .}}
<h1 class="err">{{.Title}}</h1>
<p>{{.Message}}</p>
<p class="meta">error: <code>{{.Code}}</code></p>
{{template "foot" .}}{{end}}
`

func parsePages() (*template.Template, error) {
	return template.New("pages").Funcs(template.FuncMap{"lower": strings.ToLower}).Parse(pagesHTML)
}

// render executes page into a buffer first, so that a template error
// becomes a 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, status int, page string, data map[string]any) {
	if _, ok := data["Title"]; !ok {
		data["Title"] = "devidp"
	}
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, page, data); err != nil {
		s.log.Error("devidp: render page", "page", page, "err", err)
		http.Error(w, "devidp: internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
