package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the configuration file at path and parses it with Parse.
// getenv expands ${VAR} references (os.Getenv when nil).
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data, getenv)
}

// Parse decodes, expands, completes and validates a configuration file's
// contents. path names the file in messages and anchors relative file paths
// (secret *_file, tls files, state_file, template_file), which are resolved
// against its directory.
//
// Decoding is strict: an unknown key is an error (except top-level keys
// starting with "x-", a place for YAML anchors that "<<" merges reuse). ${VAR} in a scalar value is
// replaced with getenv("VAR") (os.Getenv when getenv is nil); an unset or
// empty variable is an error unless written ${VAR:-default}; "$${" stands for
// a literal "${". Every problem found is reported at once: the error is an
// Errors, sorted by position, each with the file, line and column.
func Parse(path string, data []byte, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	p := &parser{
		file:   path,
		dir:    filepath.Dir(path),
		getenv: getenv,
		pos:    map[any]*yaml.Node{},
		fields: map[reflect.Type][]field{},
		failed: map[*yaml.Node]bool{},
	}
	cfg := &Config{Path: path}
	data, p.envRefs = protectEnvRefs(data)
	root, err := p.parseYAML(data)
	if err != nil {
		return nil, Errors{*err}
	}
	if root != nil {
		p.root = root
		p.expand(root)
		p.pos[cfg] = root
		p.decode(root, reflect.ValueOf(cfg).Elem(), "")
	}
	p.readSecrets(cfg)
	p.applyDefaults(cfg)
	p.validating = true
	p.validate(cfg)
	if len(p.errs) > 0 {
		return nil, p.errs.sortDedup()
	}
	p.warn(cfg)
	cfg.Warnings = p.warns.sortDedup()
	return cfg, nil
}

// Limits that keep a hostile or broken file from costing much.
const (
	maxDecodeNodes = 1 << 18 // aliases and merges can multiply nodes ("billion laughs")
	maxErrors      = 200
	maxSecretBytes = 64 << 10
)

// parser holds the state of one Parse call.
type parser struct {
	file   string
	dir    string
	getenv func(string) string
	// envRefs maps the placeholders protectEnvRefs put in the raw file to
	// the ${...} references they stand for.
	envRefs map[string]string
	warns   Errors
	root    *yaml.Node
	errs    Errors
	// pos maps a pointer to a decoded value (a field, a slice element, or a
	// mapEntry) to the node it was decoded from, for messages.
	pos    map[any]*yaml.Node
	fields map[reflect.Type][]field
	nodes  int
	full   bool
	// tooLarge is set once the node limit has been reported.
	tooLarge bool
	errSeen  map[Error]bool
	// failed holds the nodes that failed to decode; validating is set once
	// decoding is done.
	failed     map[*yaml.Node]bool
	validating bool
}

// mapEntry keys pos for one entry of a decoded map.
type mapEntry struct {
	m   any // pointer to the map
	key string
}

// field is one YAML-visible struct field.
type field struct {
	name  string
	index int
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// isParserError reports whether msg is one of the YAML parser's (not
// scanner's) "did not find expected" errors.
func isParserError(msg string) bool {
	for _, m := range []string{"did not find expected key", "did not find expected '-' indicator",
		"did not find expected node content", "did not find expected <document start>",
		"did not find expected ',' or"} {
		if strings.HasPrefix(msg, m) {
			return true
		}
	}
	return false
}

// parseYAML parses data into a node tree. A syntax error is returned with
// the line the YAML library names (column 1: it gives none).
func (p *parser) parseYAML(data []byte) (root *yaml.Node, perr *Error) {
	defer func() {
		// The YAML library is outside input's first reader: a panic in it
		// must not take the process (or a hot reload) down.
		if r := recover(); r != nil {
			root, perr = nil, &Error{File: p.file, Line: 1, Column: 1, Msg: fmt.Sprintf("yaml: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, p.syntaxError(data, err)
	}
	// A second document would be silently ignored: refuse it, so that
	// half of a file split by "---" cannot go unnoticed.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, p.syntaxError(data, err)
	default:
		e := Error{File: p.file, Line: max(next.Line, 1), Column: max(next.Column, 1),
			Msg: "a second YAML document (after \"---\"): the configuration is one document"}
		return nil, &e
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0], nil
	}
	return nil, nil
}

// syntaxError turns the YAML library's error into an Error at the line it
// names (column 1: it gives none).
func (p *parser) syntaxError(data []byte, err error) *Error {
	e := Error{File: p.file, Line: 1, Column: 1, Msg: err.Error()}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		if n, aerr := strconv.Atoi(m[1]); aerr == nil && n > 0 {
			e.Line = n
			// The YAML library reports parser errors (unlike scanner
			// errors) with a 0-based line: the problem is on the next.
			if isParserError(m[2]) && n < strings.Count(string(data), "\n")+1 {
				e.Line = n + 1
			}
		}
		e.Msg = "yaml: " + m[2]
	}
	return &e
}

// errAt records a problem at node n (the document start when n is nil).
// A node that failed to decode gets no further, follow-on complaints from
// validation ("want a string" is enough; "is required" would be noise).
func (p *parser) errAt(n *yaml.Node, format string, args ...any) {
	if n != nil {
		if p.failed[n] {
			// Reported already: an alias or a merge decodes it again, or
			// validation would only repeat the decoding error.
			return
		}
		if !p.validating {
			p.failed[n] = true
		}
	}
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line = n.Line
		if n.Column > 0 {
			col = n.Column
		}
	}
	p.addErr(Error{File: p.file, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) addErr(e Error) {
	// An alias or a merge decodes the same node again: report it once, and
	// do not let repeats fill the error budget.
	if p.errSeen == nil {
		p.errSeen = map[Error]bool{}
	}
	if p.errSeen[e] {
		return
	}
	p.errSeen[e] = true
	if len(p.errs) >= maxErrors {
		if !p.full {
			p.full = true
			p.errs = append(p.errs, Error{File: p.file, Line: e.Line, Column: e.Column, Msg: "too many errors"})
		}
		return
	}
	p.errs = append(p.errs, e)
}

// node returns the node the first of keys was decoded from, falling back
// to the next key, and finally to nil (the document start).
func (p *parser) node(keys ...any) *yaml.Node {
	for _, k := range keys {
		if n := p.pos[k]; n != nil {
			return n
		}
	}
	return p.root
}

// expand replaces ${VAR} in every scalar value in place, so that positions
// stay those of the file. Keys are not expanded; aliases are skipped (their
// anchor is expanded where it stands).
func (p *parser) expand(n *yaml.Node) {
	p.restoreEnvRefs(n)
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			p.expand(c)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			p.expand(n.Content[i])
		}
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "${") {
			v, err := expandEnv(n.Value, p.getenv)
			if err != nil {
				p.errAt(n, "%v", err)
				return
			}
			n.Value = v
		}
	}
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envRefRE finds ${NAME} and ${NAME:-default} references in the raw file.
var envRefRE = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}\n]*)?\}`)

// protectEnvRefs replaces every ${...} reference in the raw file with a
// placeholder of the same length made of characters YAML treats as plain
// text, so that DESIGN.md's own example,
// `session: {secret: ${RISKGATE_SESSION_SECRET}, ttl: 8h}`, parses: in a
// flow mapping the braces of "${...}" would otherwise end the mapping.
// Variables are still expanded after parsing, on values only, so a value
// can never inject YAML. Placeholders keep every line and column as written.
func protectEnvRefs(data []byte) ([]byte, map[string]string) {
	locs := envRefRE.FindAllIndex(data, -1)
	if len(locs) == 0 {
		return data, nil
	}
	out := append([]byte(nil), data...)
	refs := make(map[string]string, len(locs))
	for i, loc := range locs {
		if loc[0] > 0 && data[loc[0]-1] == '$' {
			continue // "$${" is a literal "${"
		}
		orig := string(data[loc[0]:loc[1]])
		ph := ""
		for _, fill := range []string{"~", "^", "%", "="} {
			c := "$" + fill + strconv.FormatInt(int64(i), 16) + fill
			if len(c) < len(orig) {
				c += strings.Repeat(fill, len(orig)-len(c))
			}
			if !bytes.Contains(data, []byte(c)) {
				if _, taken := refs[c]; !taken {
					ph = c
					break
				}
			}
		}
		if ph == "" || len(ph) != len(orig) {
			continue // leave it as written: the YAML parser reports it
		}
		refs[ph] = orig
		copy(out[loc[0]:loc[1]], ph)
	}
	return out, refs
}

// restoreEnvRefs puts the ${...} references back into the scalars of n (keys
// included, so that messages quote what the admin wrote).
func (p *parser) restoreEnvRefs(n *yaml.Node) {
	if len(p.envRefs) == 0 {
		return
	}
	if n.Kind == yaml.ScalarNode {
		if strings.Contains(n.Value, "$") {
			for ph, orig := range p.envRefs {
				n.Value = strings.ReplaceAll(n.Value, ph, orig)
			}
		}
		return
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			p.restoreEnvRefs(n.Content[i]) // keys; values are restored by expand
		}
	}
}

// expandEnv replaces ${NAME} and ${NAME:-default} in s; "$${" is a literal
// "${".
func expandEnv(s string, getenv func(string) string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated \"${\" in value")
		}
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !envNameRE.MatchString(name) {
			return "", fmt.Errorf("bad variable name %q in \"${%s}\"", name, expr)
		}
		v := getenv(name)
		if v == "" {
			if !hasDef {
				return "", fmt.Errorf("environment variable %s is not set", name)
			}
			v = def
		}
		b.WriteString(v)
	}
}

var durationType = reflect.TypeFor[Duration]()

// decode stores node n into v, reporting every problem with its position.
// path names v in messages ("policies[0].max_risk").
func (p *parser) decode(n *yaml.Node, v reflect.Value, path string) {
	if !p.count(n) {
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	null := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	if v.Type() == durationType {
		if null {
			return
		}
		var d Duration
		if err := d.UnmarshalYAML(n); err != nil {
			p.errAt(n, "%s: %v", path, err)
			return
		}
		v.Set(reflect.ValueOf(d))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if null && v.Type().Elem().Kind() != reflect.Struct {
			return
		}
		e := reflect.New(v.Type().Elem())
		if !null {
			p.decode(n, e.Elem(), path)
		}
		v.Set(e)
	case reflect.Struct:
		if null {
			return
		}
		if n.Kind != yaml.MappingNode {
			p.errAt(n, "%s: want a mapping, got %s", orTop(path), kindName(n))
			return
		}
		p.decodeStruct(n, v, path, map[string]bool{})
	case reflect.Slice:
		if null {
			return
		}
		if n.Kind != yaml.SequenceNode {
			p.errAt(n, "%s: want a list, got %s", path, kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		v.Set(s)
		for i, c := range n.Content {
			ev := s.Index(i)
			p.pos[ev.Addr().Interface()] = resolve(c)
			p.decode(c, ev, fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if null {
			return
		}
		if n.Kind != yaml.MappingNode {
			p.errAt(n, "%s: want a mapping, got %s", path, kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		v.Set(m)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := resolve(n.Content[i]), n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				p.errAt(k, "%s: keys must be strings", path)
				continue
			}
			if seen[k.Value] {
				p.errAt(k, "duplicate key %q in %s", k.Value, path)
				continue
			}
			seen[k.Value] = true
			ev := reflect.New(v.Type().Elem()).Elem()
			p.decode(val, ev, path+"."+k.Value)
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
			p.pos[mapEntry{v.Addr().Interface(), k.Value}] = resolve(val)
		}
	case reflect.String:
		if null {
			return
		}
		if n.Kind != yaml.ScalarNode {
			p.errAt(n, "%s: want a string, got %s", path, kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if null {
			return
		}
		i, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			p.errAt(n, "%s: want an integer, got %s", path, kindName(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		if null {
			return
		}
		switch strings.ToLower(n.Value) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			p.errAt(n, "%s: want true or false, got %s", path, kindName(n))
		}
	default:
		p.errAt(n, "%s: cannot decode into %s", path, v.Type())
	}
}

// decodeStruct decodes mapping n into struct v. seen holds the keys already
// set explicitly (merged mappings do not override them).
func (p *parser) decodeStruct(n *yaml.Node, v reflect.Value, path string, seen map[string]bool) {
	fields := p.fieldsOf(v.Type())
	if f, ok := v.Type().FieldByName("Line"); ok && f.Tag.Get("yaml") == "-" {
		v.FieldByName("Line").SetInt(int64(n.Line))
		v.FieldByName("Column").SetInt(int64(n.Column))
	}
	// Explicit keys first, then "<<" merges, which fill only what is unset.
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		// Every key costs, known or not: merges repeat them.
		if !p.count(k) {
			return
		}
		if k.Kind != yaml.ScalarNode {
			p.errAt(k, "%s: keys must be strings", orTop(path))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, val)
			continue
		}
		f, ok := lookupField(fields, k.Value)
		if !ok && path == "" && strings.HasPrefix(k.Value, "x-") {
			continue // top-level "x-" keys hold YAML anchors for reuse
		}
		if !ok {
			if p.failed[k] {
				continue // reported already (a merge repeats it)
			}
			hint := suggest(fields, k.Value)
			if hint == "" && strings.Contains(k.Value, "${") {
				hint = " (${VAR} is expanded in values only, not in keys)"
			}
			p.errAt(k, "unknown key %q%s%s", k.Value, inPath(path), hint)
			continue
		}
		if seen[k.Value] {
			p.errAt(k, "duplicate key %q%s", k.Value, inPath(path))
			continue
		}
		seen[k.Value] = true
		fv := v.Field(f.index)
		p.pos[fv.Addr().Interface()] = resolve(val)
		p.decode(val, fv, join(path, k.Value))
	}
	for _, m := range merges {
		m = resolve(m)
		var srcs []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			srcs = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, c := range m.Content {
				srcs = append(srcs, resolve(c))
			}
		}
		for _, src := range srcs {
			if src.Kind != yaml.MappingNode {
				p.errAt(src, "%s: \"<<\" wants a mapping or a list of mappings", orTop(path))
				continue
			}
			// Keys set here must not count as set for the next merge's
			// duplicate check, only for explicit keys.
			p.mergeStruct(src, v, path, seen)
		}
	}
}

// mergeStruct decodes the keys of src that are not in seen into v.
func (p *parser) mergeStruct(src *yaml.Node, v reflect.Value, path string, seen map[string]bool) {
	sub := &yaml.Node{Kind: yaml.MappingNode, Line: src.Line, Column: src.Column}
	for i := 0; i+1 < len(src.Content); i += 2 {
		if !p.count(src) {
			return
		}
		k := resolve(src.Content[i])
		if k.Kind == yaml.ScalarNode && k.Tag != "!!merge" && seen[k.Value] {
			continue
		}
		sub.Content = append(sub.Content, src.Content[i], src.Content[i+1])
	}
	if !p.count(src) {
		return
	}
	p.decodeStruct(sub, v, path, seen)
}

// count counts one decoded node and reports false, with one error for the
// whole file, once aliases and merges have made the document too large.
func (p *parser) count(n *yaml.Node) bool {
	if p.nodes++; p.nodes <= maxDecodeNodes {
		return true
	}
	if !p.tooLarge {
		p.tooLarge = true
		p.errAt(n, "document too large (aliases and merges expand to more than %d nodes)", maxDecodeNodes)
	}
	return false
}

func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func (p *parser) fieldsOf(t reflect.Type) []field {
	if fs, ok := p.fields[t]; ok {
		return fs
	}
	var fs []field
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fs = append(fs, field{name: name, index: i})
	}
	p.fields[t] = fs
	return fs
}

func lookupField(fs []field, name string) (field, bool) {
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// suggest names the closest known key when the unknown one looks like a
// typo of it.
func suggest(fs []field, name string) string {
	best, bestD := "", 3
	for _, f := range fs {
		if d := editDistance(name, f.name); d < bestD {
			best, bestD = f.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func inPath(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

func orTop(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

// readSecrets fills every secret from its *_file form and resolves the
// other file paths against the config file's directory.
func (p *parser) readSecrets(c *Config) {
	p.secret(&c.Auth.ClientSecret, &c.Auth.ClientSecretFile, "auth.client_secret", &c.Auth)
	p.secret(&c.Auth.Session.Secret, &c.Auth.Session.SecretFile, "auth.session.secret", &c.Auth.Session)
	for i := range c.Risk.Vendors {
		v := &c.Risk.Vendors[i]
		pre := fmt.Sprintf("risk.vendors[%d].", i)
		p.secret(&v.Token, &v.TokenFile, pre+"token", v)
		p.secret(&v.ClientSecret, &v.ClientSecretFile, pre+"client_secret", v)
		p.secret(&v.APIKey, &v.APIKeyFile, pre+"api_key", v)
		p.secret(&v.WebhookSecret, &v.WebhookSecretFile, pre+"webhook_secret", v)
	}
	for _, f := range []*string{&c.Server.TLS.CertFile, &c.Server.TLS.KeyFile, &c.Server.TLS.ClientCAFile,
		&c.Risk.StateFile, &c.Branding.TemplateFile} {
		if *f != "" {
			*f = p.abs(*f)
		}
	}
}

func (p *parser) abs(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(p.dir, name)
}

func (p *parser) secret(value, file *string, name string, parent any) {
	if *file == "" {
		return
	}
	n := p.node(file, parent)
	if *value != "" {
		p.errAt(n, "set %s or %s_file, not both", name, name)
		return
	}
	*file = p.abs(*file)
	data, err := readSmallFile(*file)
	if err != nil {
		p.errAt(n, "%s_file: %v", name, err)
		return
	}
	// Editors add a final newline (CRLF on Windows, a BOM with Notepad):
	// none of it is part of the secret.
	*value = strings.TrimRight(strings.TrimPrefix(string(data), "\uFEFF"), "\r\n")
	if *value == "" {
		p.errAt(n, "%s_file: %s is empty", name, *file)
	}
}

// readSmallFile reads a regular file of at most maxSecretBytes (a FIFO or
// /dev/zero must not hang or exhaust a reload).
func readSmallFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretBytes {
		return nil, errors.New(name + " is too large for a secret")
	}
	return data, nil
}
