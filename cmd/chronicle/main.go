// Command chronicle operates a Chronicle deployment: it migrates the schema,
// runs a worker, enqueues and inspects jobs, works the dead-letter queue,
// rebuilds projections and verifies the event log.
//
// Every command reads the database from --database-url, else $DATABASE_URL,
// else the local development PostgreSQL, and NATS likewise from --nats-url
// or $NATS_URL.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
