// Package testutil holds the helpers the tests of several packages share,
// so that each exists once: for now, network namespaces of a test's own.
package testutil
