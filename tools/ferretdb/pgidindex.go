// The _id index FerretDB's own lookups can use, on PostgreSQL.
//
// FerretDB v1's PostgreSQL backend indexes `_id` with a unique btree on
// `_jsonb->'_id'`, which its UPDATE and DELETE by _id use. But it pushes a
// query's filter on `_id` down as `_jsonb->$1 @> $2` (containment, with the
// field name as a parameter), which no btree serves: every find, and the
// read that precedes every update and delete, scans the whole table (EXPLAIN:
// "Seq Scan ... Rows Removed by Filter: 19999"; 21 ms per findOne and per
// updateOne at 20,000 documents on the development machine).
//
// A GIN index on the same expression serves containment: with it the plan is
// "Bitmap Index Scan" and both take about 1 ms. PostgreSQL plans each
// execution of FerretDB's prepared statements with the parameter values
// (custom plans) as long as that is cheaper than one generic plan, which it
// is once the table is larger than a few pages; plan_cache_mode makes it so
// from the first row (customPlans).
//
// This file adds that index, without patching FerretDB: a loop finds the
// collection tables of every FerretDB database (a schema holding FerretDB's
// metadata table) that lack it and creates it. FerretDB does not list it,
// PostgreSQL keeps it up to date on every write and drops it with its table.
package main

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// missingGinIndexes lists the collection tables without the extra index, with the index name each gets:
// at most 48 characters of the table name, 8 of its md5 and a suffix FerretDB never uses (its own
// index names end in "_idx"), so the name is within PostgreSQL's 63 and unique in its schema.
const missingGinIndexes = `
	SELECT n.nspname, c.relname, x.idx
	FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace
	CROSS JOIN LATERAL (SELECT left(c.relname, 48) || '_' || left(md5(c.relname), 8) || '_idgin' AS idx) x
	WHERE c.relkind = 'r'
	  AND c.relname <> '_ferretdb_database_metadata'
	  AND EXISTS (SELECT 1 FROM pg_class m WHERE m.relnamespace = n.oid AND m.relname = '_ferretdb_database_metadata')
	  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = '_jsonb' AND NOT a.attisdropped)
	  AND NOT EXISTS (SELECT 1 FROM pg_class i WHERE i.relnamespace = n.oid AND i.relname = x.idx)`

// keepPgIDIndexes runs until ctx ends, checking every interval.
func keepPgIDIndexes(ctx context.Context, dsn string, interval time.Duration, logger *slog.Logger) {
	config, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		logger.Warn("_id index loop not started", "err", err)
		return
	}
	config.MaxConns = 1
	config.ConnConfig.RuntimeParams["application_name"] = "ferretdb-embedded _id index"
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		logger.Warn("_id index loop not started", "err", err)
		return
	}
	defer pool.Close()

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if n, err := createGinIndexes(ctx, pool); err != nil {
			logger.Debug("_id index check failed; retrying later", "err", err)
		} else if n > 0 {
			logger.Info("created _id lookup indexes", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// createGinIndexes creates the missing indexes and returns how many it created.
func createGinIndexes(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	rows, err := pool.Query(ctx, missingGinIndexes)
	if err != nil {
		return 0, err
	}
	missing, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([3]string, error) {
		var t [3]string
		err := r.Scan(&t[0], &t[1], &t[2])
		return t, err
	})
	if err != nil {
		return 0, err
	}
	created := 0
	for _, t := range missing {
		stmt := `CREATE INDEX IF NOT EXISTS ` + pgx.Identifier{t[2]}.Sanitize() + ` ON ` + pgx.Identifier{t[0], t[1]}.Sanitize() + ` USING gin ((_jsonb->'_id') jsonb_path_ops)`
		if _, err := pool.Exec(ctx, stmt); err != nil {
			// The table may have been dropped since it was listed.
			return created, err
		}
		created++
	}
	return created, nil
}

// customPlans adds plan_cache_mode=force_custom_plan to a PostgreSQL connection string that does not set
// it (URL or key=value form): a generic plan, made once while a table is small, can never use the index.
func customPlans(dsn string) string {
	if strings.Contains(dsn, "plan_cache_mode") {
		return dsn
	}
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("plan_cache_mode", "force_custom_plan")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn) + " plan_cache_mode=force_custom_plan"
}
