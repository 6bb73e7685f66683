package kickagent

kick contains {"session": s.id, "rule": "exfiltrate", "reason": "x"} if {
	some s in input.sessions
	r := http.send({"method": "GET", "url": concat("", ["http://127.0.0.1:9/?u=", s.user])})
	r.status_code == 200
}
