FROM base
SHELL ["powershell", "-Command"]
