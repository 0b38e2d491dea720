// Command docgen writes the generated parts of the docs from the standard
// operator catalog: a page per operator and an index under docs/operators,
// and the pipeline JSON Schema at docs/schema/pipeline.schema.json.
//
//	go run ./cmd/docgen          # make docs: bring docs/ up to date
//	go run ./cmd/docgen -check   # make verify: fail if docs/ is out of date
//
// With -check nothing is written; the command lists every missing, stale or
// obsolete file and exits 1 when there is any.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/operatordocs"
)

type config struct {
	out   string // docs directory
	check bool   // compare only
}

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "out", "docs", "docs `directory` to write into (or check)")
	flag.BoolVar(&cfg.check, "check", false, "write nothing; exit 1 listing the files that are missing, stale or obsolete")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "docgen: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, all.New(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

// run generates the docs for reg and writes them to cfg.out, or with
// cfg.check compares them with what is there.
func run(ctx context.Context, cfg config, reg *catalog.Registry, stdout io.Writer) error {
	files, err := operatordocs.Generate(reg)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if cfg.check {
		problems, err := operatordocs.Check(cfg.out, files)
		if err != nil {
			return err
		}
		if len(problems) == 0 {
			fmt.Fprintf(stdout, "%s: %d generated files are up to date\n", cfg.out, len(files))
			return nil
		}
		for _, p := range problems {
			fmt.Fprintf(stdout, "%s: %s/%s\n", p.Kind, cfg.out, p.Path)
		}
		return fmt.Errorf("%d generated files in %s are out of date; run make docs and commit the result", len(problems), cfg.out)
	}
	changed, err := operatordocs.Write(cfg.out, files)
	if err != nil {
		return err
	}
	for _, p := range changed {
		verb := "wrote"
		if p.Kind == "obsolete" {
			verb = "removed"
		}
		fmt.Fprintf(stdout, "%s %s/%s\n", verb, cfg.out, p.Path)
	}
	fmt.Fprintf(stdout, "%s: %d generated files, %d changed\n", cfg.out, len(files), len(changed))
	return nil
}
