// Command ferretdb-embedded runs FerretDB v1 on a loopback address: with its
// SQLite backend for Registry DB's embedded default database (SPEC §3), or
// with its PostgreSQL backend (-handler postgresql) for operators who want
// writers that are truly concurrent without running MongoDB (SPEC §20).
//
// It prints one JSON line {"uri": "..."} on stdout once the listener is up,
// and stops when it receives SIGTERM/SIGINT or when its stdin closes (so it
// never outlives the Node.js process that started it).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "TCP address to listen on: loopback, or a private address when replicas on other machines use it (no TLS, no authentication)")
	handler := flag.String("handler", "sqlite", "backend: sqlite (data in -data-dir) or postgresql (data in the database of -postgresql-url)")
	dataDir := flag.String("data-dir", "./data/ferretdb", "directory for the SQLite databases (sqlite handler only)")
	pgURL := flag.String("postgresql-url", os.Getenv("FERRETDB_POSTGRESQL_URL"), "PostgreSQL connection URL for the postgresql handler, e.g. postgres://user@127.0.0.1:5432/ferretdb (default $FERRETDB_POSTGRESQL_URL, which keeps a password out of the process list)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	watchStdin := flag.Bool("watch-stdin", true, "exit when stdin reaches EOF")
	idIndexEvery := flag.Duration("id-index-interval", time.Second, "how often missing _id lookup indexes are created (see idindex.go and pgidindex.go); 0 turns it off")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail("bad -log-level: %v", err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	config := ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: *listen}, Logger: logger, Handler: *handler}
	where := map[string]string{}
	var keepIndexes func(context.Context)
	switch *handler {
	case "sqlite":
		abs, err := filepath.Abs(*dataDir)
		if err != nil {
			fail("bad -data-dir: %v", err)
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			fail("cannot create data dir %s: %v", abs, err)
		}
		config.SQLiteURL = "file:" + abs + "/"
		where["data_dir"] = abs
		keepIndexes = func(ctx context.Context) { keepIDIndexes(ctx, abs, *idIndexEvery, logger) }
	case "postgresql":
		if *pgURL == "" {
			fail("-handler postgresql needs -postgresql-url (or FERRETDB_POSTGRESQL_URL)")
		}
		config.PostgreSQLURL = customPlans(*pgURL)
		keepIndexes = func(ctx context.Context) { keepPgIDIndexes(ctx, *pgURL, *idIndexEvery, logger) }
	default:
		fail("bad -handler %q: sqlite or postgresql", *handler)
	}

	f, err := ferretdb.New(&config)
	if err != nil {
		fail("cannot start FerretDB: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}

	done := make(chan struct{})
	go func() {
		_ = f.Run(ctx)
		close(done)
	}()
	if *idIndexEvery > 0 {
		go keepIndexes(ctx)
	}

	// MongoDBURI blocks until the listener has its address.
	uriCh := make(chan string, 1)
	go func() { uriCh <- f.MongoDBURI() }()
	select {
	case uri := <-uriCh:
		where["uri"] = uri
		where["handler"] = *handler
		line, _ := json.Marshal(where)
		fmt.Println(string(line))
	case <-time.After(30 * time.Second):
		fail("FerretDB listener did not start within 30s")
	case <-done:
		fail("FerretDB stopped before listening")
	}

	<-done
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ferretdb-embedded: "+format+"\n", args...)
	os.Exit(1)
}
