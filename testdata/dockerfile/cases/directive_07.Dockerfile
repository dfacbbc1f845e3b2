# syntax=a
# syntax=b
RUN a
