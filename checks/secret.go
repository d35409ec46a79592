package checks

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// secretFileCap bounds a password or shared-secret file: a secret is a
// line, and a bigger file is a mistake (a key, a log) not to send anywhere.
const secretFileCap = 4 << 10

// readSecret reads a password or shared-secret file: at most
// secretFileCap bytes, less one final line break ("\n" or "\r\n"). The
// probers read it on every check, so a rotated secret takes effect without
// a reload. Errors name the file, never its content.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", path, pathErr(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, secretFileCap+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", path, pathErr(err))
	}
	if len(b) > secretFileCap {
		return "", fmt.Errorf("%s is larger than %d bytes; it must hold the secret alone", path, secretFileCap)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// pathErr drops the *fs.PathError wrapper, whose text repeats the path.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// decodeSecretFile reads the file name under key and checks now that the
// file can be read, so that `director check` and a reload report a
// missing or unreadable secret with the key's line. required says an
// empty secret is a problem too.
func decodeSecretFile(d Decoder, key string, required bool) string {
	path, ok := d.File(key)
	if !ok {
		return ""
	}
	s, err := readSecret(path)
	switch {
	case err != nil:
		d.Errorf(key, "%v", err)
	case required && s == "":
		d.Errorf(key, "%s is empty", path)
	}
	return path
}
