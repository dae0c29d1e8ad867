"""The demo app: prints the versions of psycopg2 and of the libpq it is linked with."""
import json

import psycopg2
import psycopg2.extensions

print(json.dumps({"psycopg2": psycopg2.__version__.split()[0],
                  "libpq": psycopg2.extensions.libpq_version()}))
