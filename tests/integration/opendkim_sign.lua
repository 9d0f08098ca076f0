-- opendkim_sign.lua - miltertest script: one message (MSGFILE) through the OpenDKIM
-- milter at MILTER as a trusted local client, so that it signs; prints the DKIM-Signature value.
local conn = mt.connect(os.getenv("MILTER"), 20, 0.25)
if conn == nil then error("cannot connect to the milter") end
mt.macro(conn, SMFIC_CONNECT, "j", "mx.example.com")
if mt.conninfo(conn, "localhost", "127.0.0.1") ~= nil then error("conninfo") end
mt.macro(conn, SMFIC_MAIL, "i", "T1")
if mt.mailfrom(conn, "joe@example.com") ~= nil then error("mailfrom") end
if mt.rcptto(conn, "suzie@example.net") ~= nil then error("rcptto") end
local f = io.open(os.getenv("MSGFILE"), "rb")
local msg = f:read("*a")
f:close()
local head, body = msg:match("^(.-)\r\n\r\n(.*)$")
for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
  local name, value = line:match("^([^:]+):%s?(.*)$")
  if name ~= nil then
    if mt.header(conn, name, value) ~= nil then error("header") end
  end
end
if mt.eoh(conn) ~= nil then error("eoh") end
if mt.bodystring(conn, body) ~= nil then error("body") end
if mt.eom(conn) ~= nil then error("eom") end
if not mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature") then error("no signature added") end
io.write(mt.getheader(conn, "DKIM-Signature", 0))
mt.disconnect(conn)
