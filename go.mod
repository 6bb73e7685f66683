module github.com/kickagent/kickagent

go 1.24
