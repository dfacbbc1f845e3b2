FROM base
RUNN echo
