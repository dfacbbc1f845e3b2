FROM a
RUN [-]
