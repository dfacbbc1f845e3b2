#!/bin/sh
# Serves the site with busybox httpd in the foreground.
exec httpd -f -v -p "${PORT:-8080}" -h "$APP_HOME/site"
