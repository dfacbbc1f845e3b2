FROM a
SHELL [false]
