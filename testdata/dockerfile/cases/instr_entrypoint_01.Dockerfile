FROM base
ENTRYPOINT exec app
