package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/importer"
	"github.com/lvsdirector/director/internal/etcservices"
	"github.com/lvsdirector/director/internal/safefile"
)

// importMaxBytes bounds each source file read, included ones too.
const importMaxBytes = 16 << 20

// importCmd converts another director's configuration: the TOML to stdout
// (or -o), the report to stderr. Exit 0 when the output is usable, 1 when
// the source cannot be read or parsed, 2 on usage errors.
func importCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "source format: keepalived, ldirectord or ipvsadm (guessed when not given)")
	out := fs.String("o", "", "write the director config to this file instead of standard output")
	services := fs.String("services", etcservices.DefaultPath, "services database for port names the importer does not know")
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		fmt.Fprintf(stderr, "director import: give one source file, not %d\nusage: director import [-from keepalived|ldirectord|ipvsadm] [-o director.toml] FILE\n", len(files))
		return 2
	}
	format := importer.Format(*from)
	if *from != "" && !slices.Contains(importer.Formats, format) {
		fmt.Fprintf(stderr, "director import: -from %q: want keepalived, ldirectord or ipvsadm\n", *from)
		return 2
	}
	name := files[0]
	data, err := safefile.ReadFile(name, importMaxBytes)
	if err != nil {
		fmt.Fprintf(stderr, "director import: %v\n", err)
		return 1
	}
	if format == "" {
		format = importer.Guess(name, data)
		fmt.Fprintf(stderr, "%s: read as %s (set -from to choose)\n", name, format)
	}
	ports, err := portLookup(*services)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && *services == etcservices.DefaultPath) {
		fmt.Fprintf(stderr, "warning: %v; port names beyond the built-in ones are reported as unknown\n", err)
	}
	res, err := importer.Import(format, name, data, globSource{}, ports)
	if err != nil {
		fmt.Fprintf(stderr, "director import: %v\n", err)
		return 1
	}
	fmt.Fprint(stderr, res.Report())
	// The output should pass director check; where it does not on this
	// host (a MISC_CHECK script that lives on the director, say), say so.
	if _, err := config.Parse(outName(*out), []byte(res.TOML)); err != nil {
		var errs *config.Errors
		if errors.As(err, &errs) {
			for _, p := range errs.Problems {
				fmt.Fprintf(stderr, "warning: director check on this host: %s\n", p)
			}
		} else {
			fmt.Fprintf(stderr, "warning: director check on this host: %v\n", err)
		}
	}
	if *out == "" {
		fmt.Fprint(stdout, res.TOML)
		return 0
	}
	if err := safefile.WriteFileAtomic(*out, []byte(res.TOML), 0o640); err != nil {
		fmt.Fprintf(stderr, "director import: %v\n", err)
		return 1
	}
	return 0
}

// portLookup reads the services database for the names the importer's
// own table lacks; nil when it cannot be read.
func portLookup(path string) (importer.PortLookup, error) {
	data, err := safefile.ReadFile(path, importMaxBytes)
	if err != nil {
		return nil, err
	}
	table, err := etcservices.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return table.Port, nil
}

func outName(o string) string {
	if o == "" {
		return "director.toml"
	}
	return o
}

// globSource reads keepalived's include files from the file system.
type globSource struct{}

func (globSource) Glob(pattern string) ([]importer.File, error) {
	names, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 && !strings.ContainsAny(pattern, "*?[") {
		return nil, fmt.Errorf("no such file")
	}
	slices.Sort(names)
	var files []importer.File
	for _, n := range names {
		data, err := safefile.ReadFile(n, importMaxBytes)
		if err != nil {
			return nil, err
		}
		files = append(files, importer.File{Name: n, Data: data})
	}
	return files, nil
}
