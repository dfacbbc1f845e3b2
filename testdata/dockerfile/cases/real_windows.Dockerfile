# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
RUN Write-Host 'hello'; `
    New-Item -ItemType Directory C:\app
COPY . C:\app
WORKDIR C:\app
ENV APP_HOME=C:\app `
    PATH="C:\app;${PATH}"
CMD ["cmd", "/S", "/C", "C:\app\run.bat"]
