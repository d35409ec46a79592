// Package testutil holds the helpers the tests of several packages share,
// so that each exists once: loopback servers (TCP, HTTP, a throwaway CA
// for TLS), network namespaces, temporary files, polling, and finding the
// external tools a test needs. Leak checks live in internal/leaktest, the
// log sink for concurrent writers in internal/logbuf.
//
// Helpers that take a testing.TB fail the test on error and undo what
// they did when the test ends; the few that the e2e guest calls outside a
// test (NewCA, InNetNS, OnOwnThread) return errors instead.
package testutil
