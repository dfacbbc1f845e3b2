FROM base
RUN ---x y
