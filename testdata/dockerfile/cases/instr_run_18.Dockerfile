FROM base
RUN ["tab\there"]
