FROM base
RUN ["sh", "-c", "echo \"q\""]
