FROM base
RUN --network=none --security=insecure make
