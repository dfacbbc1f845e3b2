FROM a
COPY --x -- 
