FROM base
RUN -- echo --not-a-flag
