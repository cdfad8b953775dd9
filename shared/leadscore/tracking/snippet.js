/* leadscore tracking snippet: placeholder until the snippet lands (issue 14). */
