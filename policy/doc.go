// Package policy is riskgate's configuration model and its pure policy
// evaluation: parse and validate the YAML file (every error with
// FILE:LINE:COL), compile it, and decide a request from its Facts. It does no
// I/O beyond reading the configuration and secret files and imports no
// net/http.
package policy
