// Package apitoken reads the write API's bearer token from api_token_file
// and keeps it current: the file is read again every second, so emptying
// or deleting it turns the write API off at once and a new token takes
// effect without a restart. A file that cannot be used for any reason
// turns the write API off: the old token never outlives its file.
package apitoken

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/lvsdirector/director/internal/safefile"
)

// MinLength is the shortest token accepted: shorter ones can be guessed.
const MinLength = 16

// maxFileBytes caps the read: a token is one short line.
const maxFileBytes = 4 << 10

// ErrNoToken is wrapped by the error for a token file that is missing or
// empty: the operator's way of turning the write API off, not a mistake.
var ErrNoToken = errors.New("no token")

// noToken is a missing or empty token file, with what to do about it.
type noToken struct{ msg string }

func (e *noToken) Error() string        { return e.msg }
func (e *noToken) Is(target error) bool { return target == ErrNoToken }

func missing(path string) error {
	return &noToken{path + " does not exist; the write API is off until it holds a token"}
}

// Read returns the token held in the file at path: its content without
// surrounding white space. The file must be a regular file (a FIFO or a
// device is refused without blocking) of at most 4 KiB; when path is a
// symbolic link, the file it leads to must belong to root or to the user
// the director runs as, because whoever owns it decides the token.
func Read(path string) (string, error) {
	lfi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", missing(path)
		}
		return "", unreadable(path, err)
	}
	f, err := safefile.Open(path)
	if err != nil {
		switch {
		case errors.Is(err, safefile.ErrNotRegular):
			return "", fmt.Errorf("%w; api_token_file must name a regular file", err)
		case errors.Is(err, fs.ErrNotExist): // a dangling symbolic link, or removed meanwhile
			return "", missing(path)
		}
		return "", unreadable(path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", unreadable(path, err)
	}
	if lfi.Mode()&fs.ModeSymlink != 0 {
		if msg := symlinkOwner(path, fi); msg != "" {
			return "", errors.New(msg)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return "", unreadable(path, err)
	}
	if len(data) > maxFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes; it must hold one token on one line", path, maxFileBytes)
	}
	return check(path, string(data))
}

func unreadable(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s: %v; the write API needs a readable token file (or leave api_token_file out to turn the write API off)", path, err)
}

// check validates a token file's content.
func check(path, content string) (string, error) {
	tok := strings.TrimSpace(content)
	switch {
	case tok == "":
		return "", &noToken{path + " is empty; the write API is off until it holds a token, such as the output of: head -c 32 /dev/urandom | base64"}
	case len(tok) < MinLength:
		return "", fmt.Errorf("%s: the token is too short; use at least %d characters, such as the output of: head -c 32 /dev/urandom | base64", path, MinLength)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("%s: the token must be one line without spaces", path)
	}
	return tok, nil
}

// symlinkOwner returns why the file behind the symbolic link path (fi,
// stat of the opened file) may not hold the token, or "".
func symlinkOwner(path string, fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	self := os.Geteuid()
	if st.Uid == 0 || int(st.Uid) == self {
		return ""
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		target = "its target"
	}
	allowed := "root or to " + userName(self) + ", the user the director runs as"
	if self == 0 {
		allowed = "root, the user the director runs as"
	}
	return fmt.Sprintf("%s is a symbolic link to %s, which belongs to %s; a token behind a symbolic link must belong to %s (or name the file itself in api_token_file)",
		path, target, userName(int(st.Uid)), allowed)
}

// userName is "name (uid N)", or "uid N" when the name is unknown.
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}

// Exposure returns a warning when the token file at path can be read by
// users other than the director's own: by every user, or through a group
// the director's user is not in. "" when it is private enough or cannot
// be looked at.
func Exposure(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	perm := fi.Mode().Perm()
	if perm&0o004 != 0 {
		return fmt.Sprintf("%s is readable by every user (mode %04o); anyone on the host can change the IPVS table through the API (chmod 0600, or 0640 with the director's group)", path, perm)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && perm&0o040 != 0 && !inGroup(int(st.Gid)) {
		return fmt.Sprintf("%s is readable by group %s (mode %04o), which the director's user is not in; its members can change the IPVS table through the API (chmod 0600, or chgrp to the director's group)", path, groupName(int(st.Gid)), perm)
	}
	return ""
}

// inGroup reports whether the director's user is in group gid: a token
// file of root's, readable by the director's group, is the usual setup.
func inGroup(gid int) bool {
	if gid == os.Getegid() {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

func groupName(gid int) string {
	id := strconv.Itoa(gid)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name + " (gid " + id + ")"
	}
	return "gid " + id
}
