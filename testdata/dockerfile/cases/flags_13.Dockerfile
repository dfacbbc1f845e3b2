FROM a
COPY --x 
