# make demo: connect as configured and show the connection.
library(dbrxr)
conn <- dbx_default_connection()
print(conn)
